"""Every name of ``aio_request.__all__`` (0.2.9) exists here, with a compatible signature.

For functions, constructors and public methods, ``inspect.signature`` is compared parameter by
parameter: the same names in the same positional order, the same kinds (one relaxation: a
keyword-only parameter of aio-request's may also be positional here), and the same defaults.
Defaults that are objects compare by what they are: ``linear_backoff_delays()`` is ours with the
same three numbers, aio-request's ``MISSING`` sentinel is our ``None``, an empty header proxy is
our empty ``Headers``, and our ``None`` stands for aio-request's default object (a delays or
deadline provider, a strategy) as the docstrings say. Parameters we add must have defaults.
Type aliases and constants are checked to exist.

Where a signature differs on purpose, ``DIFFERENCES`` says why (the README's table says the
same), and the test asserts that it does differ, so the table stays exact.
"""

from __future__ import annotations

import inspect
import types
from typing import Any

import pytest

import aio_pipeline

pytestmark = [pytest.mark.needs_extras]


def reference() -> types.ModuleType:
    try:
        import aio_request
    except ImportError as error:  # pragma: no cover - the environment's fault, said plainly
        pytest.fail(f"the signature comparison needs aio-request 0.2.9: pip install -e '.[compat]' ({error})")
    assert aio_request.__version__ == "0.2.9"
    return aio_request


def _reference_names() -> list[str]:
    try:
        import aio_request
    except ImportError:
        return ["aio-request is not installed"]  # the test below then fails, saying so
    return sorted(set(aio_request.__all__))


#: (name, member) -> why ours differs; member "" is the constructor or the function itself.
DIFFERENCES: dict[tuple[str, str], str] = {
    ("Client", ""): "built by setup() (or Client(endpoint, pipeline)); concerns are middlewares, not arguments",
    ("Request", ""): "a frozen dataclass: empty values (b'', no headers) for none, not None",
    ("Deadline", ""): "absolute, on the loop clock: Deadline(deadline_at); use Deadline.from_timeout(seconds)",
    ("MethodBasedStrategy", ""): "strategies by method, plus default= for methods not named (no KeyError)",
    ("SequentialRequestStrategy", ""): "our SequentialStrategy: deadline_provider defaults to pass_deadline_through()",
    ("DefaultResponseClassifier", ""): "a dataclass: verdict_for_status comes first; use keywords",
    ("request", ""): "body may also be given by position, third, and is bytes (b'' for none)",
    ("post", ""): "body is bytes, b'' for none (None is refused)",
    ("put", ""): "body is bytes, b'' for none (None is refused)",
    ("patch", ""): "body is bytes, b'' for none (None is refused)",
    ("AioHttpTransport", ""): "failures are raised, not answered with 488/489: no status-code options",
    ("HttpxTransport", ""): "failures are raised, not answered with 488/489: no status-code options",
}
# aio-request's strategies are context managers, request(send_request, endpoint, request, deadline,
# priority); ours are middlewares, (request, call_next): see test_the_strategy_interface_is_a_middleware.
for _strategy in (
    "MethodBasedStrategy",
    "ParallelRequestStrategy",
    "RetryUntilDeadlineExpiredStrategy",
    "SequentialRequestStrategy",
    "SingleAttemptRequestStrategy",
    "RequestStrategy",
):
    DIFFERENCES[_strategy, "request"] = "a strategy is a middleware: (request, call_next), no request(...)"


def _describe(value: Any) -> Any:
    """A default, as what it means."""
    qualname = getattr(value, "__qualname__", "") or type(value).__qualname__
    if "linear_backoff_delays" in qualname or type(value).__name__ == "LinearBackoffDelays":
        if type(value).__name__ == "LinearBackoffDelays":
            return ("linear", value.min_delay_seconds, value.delay_multiplier, value.jitter)
        cells = dict(zip(value.__code__.co_freevars, (c.cell_contents for c in value.__closure__ or ()), strict=True))
        return ("linear", cells["min_delay_seconds"], cells["delay_multiplier"], cells["jitter"])
    if type(value).__name__ in ("CIMultiDictProxy", "Headers") and not value:
        return ("no headers",)
    if type(value).__name__ in ("UseClientDefault", "_Keep"):  # set_context's "keep what is set"
        return ("keep",)
    if type(value).__name__ == "object" or value is None:  # aio-request's MISSING sentinel, our None
        return None
    if type(value).__name__ in ("SequentialRequestStrategy", "SingleAttemptRequestStrategy"):
        return None  # setup()'s default strategies: ours are None, meaning the same ones
    if isinstance(value, str | int | float | bool | tuple):
        return value
    return type(value).__name__


def mismatches(theirs: inspect.Signature, ours: inspect.Signature) -> list[str]:
    problems = []
    their_params = [p for p in theirs.parameters.values() if p.name != "self"]
    our_params = {p.name: p for p in ours.parameters.values() if p.name != "self"}
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    our_positional = [p.name for p in our_params.values() if p.kind in positional]
    their_positional = [p.name for p in their_params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if our_positional[: len(their_positional)] != their_positional:
        problems.append(f"positional parameters {our_positional} != {their_positional}")
    for param in their_params:
        mine = our_params.get(param.name)
        if mine is None:
            if not any(p.kind is p.VAR_KEYWORD for p in our_params.values()) or param.kind is not param.KEYWORD_ONLY:
                problems.append(f"no parameter {param.name!r}")
            continue
        relaxed = param.kind is param.KEYWORD_ONLY and mine.kind is mine.POSITIONAL_OR_KEYWORD
        if mine.kind is not param.kind and not relaxed:
            problems.append(f"{param.name!r} is {mine.kind.description}, not {param.kind.description}")
        if param.default is not param.empty:
            if mine.default is mine.empty:
                problems.append(f"{param.name!r} has no default")
            elif mine.default is None and not isinstance(param.default, str | int | float | bool | tuple):
                pass  # our None stands for aio-request's default object (a provider, a strategy)
            elif _describe(mine.default) != _describe(param.default):
                problems.append(f"{param.name!r} defaults to {mine.default!r}, not {param.default!r}")
    for name, mine in our_params.items():
        extra = name not in {p.name for p in their_params}
        if extra and mine.default is mine.empty and mine.kind not in (mine.VAR_POSITIONAL, mine.VAR_KEYWORD):
            problems.append(f"our extra parameter {name!r} has no default")
    return problems


def _members(thing: Any) -> list[str]:
    """The public methods a class of aio-request's defines or inherits from its own classes."""
    names = set()
    for klass in inspect.getmro(thing):
        if klass.__module__.startswith("aio_request"):
            names.update(n for n, v in vars(klass).items() if not n.startswith("_") and inspect.isfunction(v))
    return sorted(names)


def _signature(thing: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(thing)
    except (TypeError, ValueError):
        return None


def test_the_reference_is_installed() -> None:
    reference()


@pytest.mark.parametrize("name", _reference_names())
def test_every_public_name_exists_with_a_compatible_signature(name: str) -> None:
    aio_request = reference()
    theirs = getattr(aio_request, name)
    assert hasattr(aio_pipeline, name), f"aio_pipeline has no {name}"
    ours = getattr(aio_pipeline, name)
    checked: list[tuple[str, Any, Any]] = []
    if inspect.isfunction(theirs):
        checked.append(("", theirs, ours))
    elif inspect.isclass(theirs) and theirs.__module__.startswith("aio_request"):
        if "__init__" in vars(theirs) or any("__init__" in vars(k) for k in theirs.__mro__[1:-1]):
            checked.append(("", theirs, ours))
        for member in _members(theirs):
            if (name, member) in DIFFERENCES:
                assert not hasattr(ours, member) or _signature(getattr(ours, member)) is not None
                continue
            assert hasattr(ours, member), f"{name}.{member} is missing"
            checked.append((member, getattr(theirs, member), getattr(ours, member)))
    for member, their_thing, our_thing in checked:
        their_signature, our_signature = _signature(their_thing), _signature(our_thing)
        if their_signature is None:
            continue
        if name in ("RequestStrategy",):  # ours is a type: any middleware; see DIFFERENCES below
            continue
        assert our_signature is not None, f"{name}.{member}: no signature"
        problems = mismatches(their_signature, our_signature)
        why = DIFFERENCES.get((name, member))
        if why is None:
            assert not problems, f"{name}{'.' + member if member else ''}: {problems}"
        else:
            assert problems, f"{name}.{member} no longer differs: drop it from DIFFERENCES ({why})"


def test_the_strategy_interface_is_a_middleware_by_design() -> None:
    # aio-request's RequestStrategy is an ABC whose request(send_request, endpoint, request,
    # deadline, priority) is a context manager; ours is any middleware (request, call_next).
    assert aio_pipeline.RequestStrategy == aio_pipeline.Middleware[aio_pipeline.Request, aio_pipeline.Response]
    assert callable(aio_pipeline.sequential_strategy())


def test_the_documented_differences_are_names_of_aio_request() -> None:
    names = set(_reference_names())
    assert {name for name, _ in DIFFERENCES} <= names
