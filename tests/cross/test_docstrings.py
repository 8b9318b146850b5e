"""Every public class or factory with options documents them one way, in an ``Options:`` block::

    One-line summary.

    Options:
        name: what it is, with its unit; default X.
        other: ...; required.

Each user-settable parameter (of the constructor, for a class; dataclass fields are its
parameters) has an entry, in signature order, and each entry gives its ``default`` or says it is
``required`` (lowercase: the end of the entry, after a semicolon). A factory that takes no
parameters says ``none; ...`` in its block. No block names a parameter its owner does not have.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

import aio_pipeline
import aio_pipeline.middlewares
import aio_pipeline.policy
import aio_pipeline.server.aiohttp
import aio_pipeline.testing
from aio_pipeline import (
    AioHttpDnsResolver,
    AioHttpTransport,
    Client,
    DefaultCircuitBreaker,
    DefaultResponseClassifier,
    DelegateEndpointProvider,
    HttpxPipelineTransport,
    HttpxTransport,
    LowTimeoutModule,
    MethodBasedStrategy,
    ParallelStrategy,
    PerCallStrategy,
    PercentileBasedRequestAttemptDelaysProvider,
    Pipeline,
    RetryBudget,
    RetryUntilDeadlineExpiredStrategy,
    RollingCircuitBreakerMetrics,
    SequentialStrategy,
    SingleAttempt,
    StaticEndpointProvider,
    TransportModule,
    aiohttp_client_middlewares,
    aiohttp_middleware_factory,
    aiohttp_timeout,
    parallel_strategy,
    retry_until_deadline_expired,
    sequential_strategy,
    setup,
    setup_v2,
    single_attempt_strategy,
    split_deadline_between_attempts,
)
from aio_pipeline.middlewares import (
    CircuitBreakerMiddleware,
    ClientDeadline,
    ClientLog,
    ClientPriority,
    ClientTracing,
    LoadShedding,
    OpenTelemetryMetricsProvider,
    PrometheusMetricsProvider,
    ServerDeadline,
    ServerLog,
    ServerPriority,
    ServerTracing,
    SystemHeaders,
)
from aio_pipeline.policy import (
    ConstantDelays,
    ExponentialBackoffDelays,
    LinearBackoffDelays,
    constant_delays,
    exponential_backoff_delays,
    linear_backoff_delays,
    linear_delays,
)
from aio_pipeline.server.aiohttp import aiohttp_server_middleware
from aio_pipeline.testing import (
    FakeTransport,
    check_middleware,
    check_server_middleware,
    conformance_report,
    server_conformance_report,
)

#: The public configurable components: each must carry a complete ``Options:`` block.
WITH_OPTIONS: dict[str, Any] = {
    # strategies
    "SingleAttempt": SingleAttempt,
    "SequentialStrategy": SequentialStrategy,
    "ParallelStrategy": ParallelStrategy,
    "PerCallStrategy": PerCallStrategy,
    "MethodBasedStrategy": MethodBasedStrategy,
    "RetryUntilDeadlineExpiredStrategy": RetryUntilDeadlineExpiredStrategy,
    "sequential_strategy": sequential_strategy,
    "parallel_strategy": parallel_strategy,
    "single_attempt_strategy": single_attempt_strategy,
    "retry_until_deadline_expired": retry_until_deadline_expired,
    "split_deadline_between_attempts": split_deadline_between_attempts,
    # delays, budget, classification, circuit breaking
    "constant_delays": constant_delays,
    "linear_delays": linear_delays,
    "linear_backoff_delays": linear_backoff_delays,
    "exponential_backoff_delays": exponential_backoff_delays,
    "ConstantDelays": ConstantDelays,
    "LinearBackoffDelays": LinearBackoffDelays,
    "ExponentialBackoffDelays": ExponentialBackoffDelays,
    "PercentileBasedRequestAttemptDelaysProvider": PercentileBasedRequestAttemptDelaysProvider,
    "RetryBudget": RetryBudget,
    "DefaultResponseClassifier": DefaultResponseClassifier,
    "DefaultCircuitBreaker": DefaultCircuitBreaker,
    # the framework, transports and drop-ins
    "Pipeline": Pipeline,
    "Client": Client,
    "AioHttpTransport": AioHttpTransport,
    "HttpxTransport": HttpxTransport,
    "aiohttp_client_middlewares": aiohttp_client_middlewares,
    "HttpxPipelineTransport": HttpxPipelineTransport,
    # middlewares
    "ClientDeadline": ClientDeadline,
    "ServerDeadline": ServerDeadline,
    "ClientPriority": ClientPriority,
    "ServerPriority": ServerPriority,
    "SystemHeaders": SystemHeaders,
    "CircuitBreakerMiddleware": CircuitBreakerMiddleware,
    "LoadShedding": LoadShedding,
    "ClientLog": ClientLog,
    "ServerLog": ServerLog,
    "ClientTracing": ClientTracing,
    "ServerTracing": ServerTracing,
    "PrometheusMetricsProvider": PrometheusMetricsProvider,
    "OpenTelemetryMetricsProvider": OpenTelemetryMetricsProvider,
    # the server side
    "aiohttp_middleware_factory": aiohttp_middleware_factory,
    "aiohttp_server_middleware": aiohttp_server_middleware,
    "aiohttp_timeout": aiohttp_timeout,
    # aio-request's facade
    "setup": setup,
    "setup_v2": setup_v2,
    "AioHttpDnsResolver": AioHttpDnsResolver,
    "RollingCircuitBreakerMetrics": RollingCircuitBreakerMetrics,
    "LowTimeoutModule": LowTimeoutModule,
    "TransportModule": TransportModule,
    "StaticEndpointProvider": StaticEndpointProvider,
    "DelegateEndpointProvider": DelegateEndpointProvider,
    # the testing kit
    "FakeTransport": FakeTransport,
    "check_middleware": check_middleware,
    "check_server_middleware": check_server_middleware,
    "conformance_report": conformance_report,
    "server_conformance_report": server_conformance_report,
}

#: The modules whose exported names must not document options they do not have.
MODULES: list[ModuleType] = [
    aio_pipeline,
    aio_pipeline.middlewares,
    aio_pipeline.policy,
    aio_pipeline.testing,
    aio_pipeline.server.aiohttp,
]

_ENTRY = re.compile(r"(\w+):(?:\s|$)")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def options_block(doc: str) -> list[tuple[str, str]] | None:
    """The ``(name, text)`` entries of the ``Options:`` block of ``doc``, in order; ``None``
    without one. An entry starts at the block's first indentation with ``name:``; deeper lines
    continue it; a blank line or a line back at the heading's indentation ends the block."""
    lines = doc.splitlines()
    start = next((index for index, line in enumerate(lines) if line.strip() == "Options:"), None)
    if start is None:
        return None
    heading = _indent(lines[start])
    entries: list[tuple[str, str]] = []
    level: int | None = None
    for line in lines[start + 1 :]:
        if not line.strip() or _indent(line) <= heading:
            break
        if level is None:
            level = _indent(line)
        if _indent(line) == level:
            if not entries and line.strip().startswith("none;"):
                continue  # "none; ...": a factory that takes no options says so
            match = _ENTRY.match(line.strip())
            assert match is not None, f"not an option entry: {line.strip()!r}"
            entries.append((match[1], line.strip()[match.end() :]))
        elif entries:
            name, text = entries[-1]
            entries[-1] = (name, f"{text} {line.strip()}")
    return entries


def settable(obj: Any) -> list[str]:
    """The parameters a user sets: the constructor's for a class (a dataclass's init fields)."""
    skipped = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [
        name
        for name, parameter in inspect.signature(obj).parameters.items()
        if parameter.kind not in skipped and name != "self" and not name.startswith("_")
    ]


#: Names that are placeholders without an optional library (httpx): documented only with it.
NEEDS_HTTPX = {"HttpxTransport", "HttpxPipelineTransport"}


def _httpx_missing() -> bool:
    return importlib.util.find_spec("httpx") is None


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=[pytest.mark.needs_extras] if n in NEEDS_HTTPX else []) for n in WITH_OPTIONS]
)
def test_options_block_lists_every_parameter_in_order_with_its_default(name: str) -> None:
    obj = WITH_OPTIONS[name]
    doc = inspect.getdoc(obj)
    assert doc, f"{name} has no docstring"
    summary, _, rest = doc.partition("\n")
    assert summary.strip() and rest.startswith("\n"), f"{name}: a one-line summary, then a blank line"
    entries = options_block(doc)
    assert entries is not None, f"{name}: no 'Options:' line"
    assert [option for option, _ in entries] == settable(obj), f"{name}: the Options entries vs the signature"
    for option, text in entries:
        assert re.search(r"\b(default|required)\b", text), f"{name}.{option}: says neither 'default' nor 'required'"


def _public(module: ModuleType) -> Iterator[tuple[str, Any]]:
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            yield f"{module.__name__}.{name}", obj


def test_no_options_block_names_a_parameter_its_owner_lacks() -> None:
    seen: set[int] = set()
    stale: list[str] = []
    for where, obj in (item for module in MODULES for item in _public(module)):
        doc = inspect.getdoc(obj)
        entries = options_block(doc) if doc else None
        if entries is None:
            continue
        seen.add(id(obj))
        parameters = set(settable(obj))
        stale += [f"{where}: {name}" for name, _ in entries if name not in parameters]
    assert not stale, "documented options that do not exist:\n" + "\n".join(stale)
    skipped = NEEDS_HTTPX if _httpx_missing() else set()
    unseen = [name for name, obj in WITH_OPTIONS.items() if id(obj) not in seen and name not in skipped]
    assert not unseen, f"not exported by the scanned modules: {unseen}"  # the scan sees every block


def test_the_block_reader_reads_continuations_and_stops_at_the_end() -> None:
    doc = "Summary.\n\nOptions:\n    a: one,\n        continued; default 1.\n    b: two; required.\n\nAfter."
    assert options_block(doc) == [("a", "one, continued; default 1."), ("b", "two; required.")]
    assert options_block("Summary.\n\nNo block here.") is None
    assert options_block("Summary.\n\nOptions:\n    none; it takes no parameters.\n") == []
