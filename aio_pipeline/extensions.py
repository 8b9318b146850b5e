"""Request extensions, typed, in one table: every key the library reads or writes on
``Request.extensions`` (as Polly's ``ResiliencePropertyKey<T>``).

An extension carries what one layer hands to another for one call when the request has no field
for it. Each key knows the type of its value; it is read and written through the key
(``BUDGET.get(request)``, ``STRATEGY.on(request, strategy)``), never with a string::

    STRATEGY      the strategy chosen for one call (``Client.request(strategy=...)``), for
                  ``PerCallStrategy`` to run instead of its default
    BUDGET        the client's ``RetryBudget``, for a strategy chosen per call to spend from
    CLASSIFIER    the client's ``ResponseClassifier``, likewise
    EVENT_HOOKS   more hooks every strategy of the call reports to (``with_event_hook``)
    AIOHTTP_CALL  the aiohttp drop-in's run of one request, for its terminal handler
    HTTPX_CALL    the httpx drop-in's, likewise

The readers a strategy uses (``budget_for``, ``classifier_for``, ``event_hooks_for``) live here
too: its own value if it has one, else the one the request carries.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Final, Generic, TypeVar, cast

from .chain import Middleware
from .http import Request, Response
from .policy import DefaultResponseClassifier, EventHook, ResponseClassifier, RetryBudget

__all__ = [
    "AIOHTTP_CALL",
    "BUDGET",
    "CLASSIFIER",
    "EVENT_HOOKS",
    "HTTPX_CALL",
    "STRATEGY",
    "Key",
    "budget_for",
    "classifier_for",
    "event_hooks_for",
    "with_client_defaults",
    "with_event_hook",
]

T = TypeVar("T")
StrategyT = TypeVar("StrategyT")


class Key(Generic[T]):
    """A typed key of ``Request.extensions``: ``name`` is the key itself."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Key({self.name!r})"

    def get(self, request: Request) -> T | None:
        """The value ``request`` carries under this key, or ``None``."""
        return cast("T | None", request.extensions.get(self.name))

    def on(self, request: Request, value: T) -> Request:
        """A copy of ``request`` carrying ``value`` under this key."""
        return request.with_extension(self.name, value)


STRATEGY: Final[Key[Middleware[Request, Response]]] = Key("aio_pipeline.strategy")
BUDGET: Final[Key[RetryBudget]] = Key("aio_pipeline.retry_budget")
CLASSIFIER: Final[Key[ResponseClassifier]] = Key("aio_pipeline.classifier")
EVENT_HOOKS: Final[Key[tuple[EventHook, ...]]] = Key("aio_pipeline.event_hooks")
#: The drop-in adapters' own per-run objects (private to each adapter: typed ``Any`` here).
AIOHTTP_CALL: Final[Key[Any]] = Key("aio_pipeline.aiohttp_call")
HTTPX_CALL: Final[Key[Any]] = Key("aio_pipeline.httpx_call")

_DEFAULT_CLASSIFIER = DefaultResponseClassifier()


def budget_for(own: RetryBudget | None, request: Request) -> RetryBudget | None:
    """The budget a strategy uses: its own if it was given one, else the one the request carries."""
    if own is not None:
        return own
    carried = BUDGET.get(request)
    return carried if isinstance(carried, RetryBudget) else None


def classifier_for(own: ResponseClassifier | None, request: Request) -> ResponseClassifier:
    """The classifier a strategy uses: its own if it was given one, else the client's (carried by
    the request), else ``DefaultResponseClassifier()``."""
    if own is not None:
        return own
    carried = CLASSIFIER.get(request)
    return carried if isinstance(carried, ResponseClassifier) else _DEFAULT_CLASSIFIER


def event_hooks_for(own: Sequence[EventHook], request: Request) -> tuple[EventHook, ...]:
    """The hooks a strategy reports to: its own, then those the request carries."""
    carried = EVENT_HOOKS.get(request)
    return (*own, *carried) if carried else tuple(own)


def with_client_defaults(
    strategy: StrategyT,
    *,
    budget: RetryBudget | None,
    classifier: ResponseClassifier | None,
    event_hooks: Sequence[EventHook],
    low_timeout_threshold: float | None = None,
    **fields: Any,
) -> StrategyT:
    """A copy of ``strategy`` (a dataclass) given a client's defaults, the one rule of every
    strategy's ``with_defaults``: its own ``budget``, ``classifier`` and ``low_timeout_threshold``
    are kept, the given ones fill those it has none of (``None``; a field it lacks is skipped),
    and it reports to ``event_hooks`` after its own. ``fields`` are set as given (a base strategy
    given the defaults too, say). ``PerCallStrategy`` binds its default strategy so, once."""
    names = {field.name for field in dataclasses.fields(strategy)}  # type: ignore[arg-type]
    given = {"budget": budget, "classifier": classifier, "low_timeout_threshold": low_timeout_threshold}
    changes: dict[str, Any] = {n: v for n, v in given.items() if n in names and getattr(strategy, n) is None}
    changes["event_hooks"] = (*getattr(strategy, "event_hooks", ()), *event_hooks)
    return dataclasses.replace(strategy, **changes, **fields)  # type: ignore[type-var]


def with_event_hook(request: Request, hook: EventHook) -> Request:
    """A copy of ``request`` whose strategies will also report to ``hook``."""
    return EVENT_HOOKS.on(request, (*(EVENT_HOOKS.get(request) or ()), hook))
