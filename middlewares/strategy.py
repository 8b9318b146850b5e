"""The strategy slot of a client pipeline: one attempt, or the strategy chosen for this call.

    deadline -> priority -> PerCallStrategy(default) -> breaker -> wire -> transport
                                  |
                 the call's own strategy if it has one (client.request(..., strategy=...)),
                 else ``default``: SingleAttempt, SequentialStrategy or ParallelStrategy

``PerCallStrategy`` also owns the client's retry budget and hands it to whichever strategy runs,
through the request, so that a strategy created for one call spends from the client's budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, cast

from aio_pipeline.chain import Handler, Middleware, link
from aio_pipeline.extensions import (
    BUDGET,
    CLASSIFIER,
    EVENT_HOOKS,
    STRATEGY,
    budget_for,
    event_hooks_for,
    with_client_defaults,
)
from aio_pipeline.http import IDEMPOTENT_METHODS, Request, Response
from aio_pipeline.policy import (
    AttemptFinished,
    AttemptStarted,
    Emitter,
    EventHook,
    ResponseClassifier,
    RetryBudget,
    check_kind,
    run_attempt,
    wants,
)
from aio_pipeline.propagation import LOW_TIMEOUT_THRESHOLD

__all__ = ["MethodBasedStrategy", "PerCallStrategy", "SingleAttempt", "single_attempt_strategy"]


@dataclass(frozen=True, slots=True)
class SingleAttempt:
    """Sends the request once, as attempt 1, and returns or raises whatever comes back.

    It still counts the call in the retry budget (its own ``budget``, else the one the request
    carries), because a budget allows extra attempts in proportion to *all* calls. Reports
    attempt events to ``event_hooks`` and to the hooks the request carries.

    Options:
        budget: the retry budget the call is counted in; default ``None``: the one the request
            carries (``PerCallStrategy``'s), if any.
        event_hooks: more hooks told of the attempt (``AttemptStarted``, ``AttemptFinished``),
            besides those the request carries; default none.
    """

    budget: RetryBudget | None = None
    event_hooks: Sequence[EventHook] = ()
    _quiet: bool = field(default=True, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_kind("budget", self.budget, RetryBudget)
        object.__setattr__(self, "event_hooks", tuple(self.event_hooks))
        # Decided once: whether any of its hooks wants to hear about the attempt itself.
        quiet = not any(wants(hook, AttemptStarted) or wants(hook, AttemptFinished) for hook in self.event_hooks)
        object.__setattr__(self, "_quiet", quiet)

    def with_defaults(
        self,
        *,
        budget: RetryBudget | None,
        classifier: ResponseClassifier | None,
        event_hooks: Sequence[EventHook],
        low_timeout_threshold: float | None = None,
    ) -> SingleAttempt:
        """A copy that uses ``budget`` unless it has its own, and reports to ``event_hooks`` too
        (``PerCallStrategy`` binds its default strategy so, once, instead of on every request).
        Its one attempt is the call's first, whose time left ``ClientDeadline`` has checked
        against the threshold: ``low_timeout_threshold`` is taken for the common signature."""
        return with_client_defaults(self, budget=budget, classifier=None, event_hooks=event_hooks)

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``)."""
        quiet, budget, observed = self._quiet, self.budget, self._observed

        def once(request: Request) -> Awaitable[Response]:
            extensions = request.extensions
            if quiet and EVENT_HOOKS.name not in extensions and BUDGET.name not in extensions:
                # The usual call: count it in the budget and hand on call_next's awaitable; no
                # outcome to build, no frame of its own left on the call's stack.
                if budget is not None:
                    budget.deposit()
                if request.attempt != 1 or request.attempt_kind != "first":
                    request = request.replace(attempt=1, attempt_kind="first")
                return call_next(request)
            return observed(request, call_next)

        return once

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)

    async def _observed(self, request: Request, call_next: Handler[Request, Response]) -> Response:
        budget = budget_for(self.budget, request)
        if budget is not None:
            budget.deposit()
        if request.attempt != 1 or request.attempt_kind != "first":
            request = request.replace(attempt=1, attempt_kind="first")
        events = Emitter(event_hooks_for(self.event_hooks, request))
        if not events:  # nobody listens: no outcome to build, the hot path of most calls
            return await call_next(request)
        outcome = await run_attempt(call_next, request, None, events)
        return outcome.unwrap()


def single_attempt_strategy() -> SingleAttempt:
    """One attempt, no retry: aio-request's ``single_attempt_strategy()``.

    Options:
        none; ``SingleAttempt(budget=..., event_hooks=...)`` takes a budget and event hooks.
    """
    return SingleAttempt()


@dataclass(frozen=True, slots=True)
class PerCallStrategy:
    """Runs the strategy chosen for this call, else ``default``.

    The chosen one is ``aio_pipeline.extensions.STRATEGY``, set by
    ``Client.request(..., strategy=...)``. A strategy chosen per call is the caller's explicit
    choice, so it applies to any method: the request is marked ``retryable`` for it. The budget,
    classifier and hooks below are put on the request in one copy, for every strategy below it.

    Options:
        default: the strategy of a call that chose none; default ``SingleAttempt()``.
        budget: the retry budget every strategy below shares, put on the request unless an outer
            layer already put one there; default a ``RetryBudget()`` of its own; ``None`` for none.
        classifier: the classifier of every strategy below that was not given one of its own;
            default ``None`` (theirs, else ``DefaultResponseClassifier()``).
        event_hooks: added to the hooks every strategy below reports to (the client's metrics
            and logs); default none.
        low_timeout_threshold: seconds; the least time left with which a strategy starts an
            attempt after the first. It is given to the default strategy once, and to a strategy
            chosen per call (one of ours that has no threshold of its own) for that call;
            default 0.005 (5 ms; ``setup()`` passes the client's).
    """

    #: runs the strategy a caller chose for one call (``Client.request(strategy=...)`` checks there is one)
    runs_chosen_strategy: ClassVar[bool] = True

    default: Middleware[Request, Response] = field(default_factory=SingleAttempt)
    budget: RetryBudget | None = field(default_factory=RetryBudget)
    classifier: ResponseClassifier | None = None
    event_hooks: Sequence[EventHook] = ()
    low_timeout_threshold: float = LOW_TIMEOUT_THRESHOLD

    _bound: Middleware[Request, Response] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not callable(self.default):
            raise ValueError(f"default must be a middleware, got {self.default!r}")
        check_kind("budget", self.budget, RetryBudget)
        check_kind("classifier", self.classifier, ResponseClassifier)
        object.__setattr__(self, "event_hooks", tuple(self.event_hooks))
        # The default strategy given the client's budget, classifier and hooks once, here, so a
        # call that brings none of its own goes to it without a copy of the request.
        threshold = self.low_timeout_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < float("inf"):
            raise ValueError(f"low_timeout_threshold must be a finite number of seconds >= 0, got {threshold!r}")
        bound = bind(self.default, self.budget, self.classifier, self.event_hooks, threshold)
        object.__setattr__(self, "_bound", bound)

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``), the bound default strategy
        linked to it once too."""
        per_call = self._per_call
        if self._bound is None:
            return lambda request: per_call(request, call_next)
        default = link(self._bound, call_next)

        def dispatch(request: Request) -> Awaitable[Response]:
            extensions = request.extensions
            if (
                STRATEGY.name not in extensions
                and BUDGET.name not in extensions
                and CLASSIFIER.name not in extensions
                and EVENT_HOOKS.name not in extensions
            ):
                return default(request)
            return per_call(request, call_next)

        return dispatch

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)

    async def _per_call(self, request: Request, call_next: Handler[Request, Response]) -> Response:
        """A strategy chosen for this call, or values an outer layer put on the request: carried
        to the strategy through the request's extensions."""
        extensions = request.extensions
        added: dict[str, object] = {}
        if self.budget is not None and BUDGET.name not in extensions:
            added[BUDGET.name] = self.budget
        if self.classifier is not None and CLASSIFIER.name not in extensions:
            added[CLASSIFIER.name] = self.classifier
        if self.event_hooks:
            added[EVENT_HOOKS.name] = (*(EVENT_HOOKS.get(request) or ()), *self.event_hooks)
        chosen = STRATEGY.get(request)
        if chosen is not None:  # the caller's explicit choice: repeatable whatever the method
            request = request.replace(extensions=MappingProxyType({**extensions, **added}), retryable=True)
            strategy = chosen
            if (
                self.low_timeout_threshold != LOW_TIMEOUT_THRESHOLD
                and getattr(strategy, "low_timeout_threshold", 0) is None
            ):
                # One of ours without a threshold of its own: the client's, for this call.
                strategy = dataclasses.replace(strategy, low_timeout_threshold=self.low_timeout_threshold)  # type: ignore[type-var]
            return await strategy(request, call_next)
        if added:
            request = request.replace(extensions=MappingProxyType({**extensions, **added}))
        return await self.default(request, call_next)


@dataclass(frozen=True, slots=True)
class MethodBasedStrategy:
    """Picks a strategy by the request's method: ``strategies[method]``, else ``default``.

    aio-request's ``MethodBasedStrategy``; ``setup()`` uses it to retry safe methods (GET, HEAD,
    OPTIONS) and send every other method once. Method names are matched case-insensitively.
    A strategy named for a method is the caller's explicit choice for it, as one passed per call
    is: a request it gets is marked ``retryable`` whatever its method, so
    ``{"POST": sequential_strategy()}`` does retry POSTs. ``default`` is that choice only with
    ``default_is_explicit=True`` (``setup()`` sets it when given an ``unsafe_method_strategy``);
    otherwise a request that is not idempotent gets from it at most what its idempotency allows.

    Options:
        strategies: the strategy for each method name (any case); required.
        default: the strategy of every other method; default ``SingleAttempt()``.
        default_is_explicit: ``default`` is the caller's explicit choice, so a request it gets
            is marked ``retryable`` whatever its method; default ``False``.
    """

    strategies: Mapping[str, Middleware[Request, Response]]
    default: Middleware[Request, Response] = field(default_factory=SingleAttempt)
    default_is_explicit: bool = False

    def __post_init__(self) -> None:
        by_method = {method.upper(): strategy for method, strategy in self.strategies.items()}
        for method, strategy in [*by_method.items(), ("default", self.default)]:
            if not callable(strategy):
                raise ValueError(f"strategy for {method} must be a middleware, got {strategy!r}")
        object.__setattr__(self, "strategies", MappingProxyType(by_method))

    def with_defaults(
        self,
        *,
        budget: RetryBudget | None,
        classifier: ResponseClassifier | None,
        event_hooks: Sequence[EventHook],
        low_timeout_threshold: float | None = None,
    ) -> MethodBasedStrategy | None:
        """A copy whose strategies are each given the defaults (see ``SingleAttempt``), or
        ``None`` when one of them cannot take them that way."""
        bound = {
            method: bind(strategy, budget, classifier, event_hooks, low_timeout_threshold)
            for method, strategy in self.strategies.items()
        }
        default = bind(self.default, budget, classifier, event_hooks, low_timeout_threshold)
        if default is None or any(strategy is None for strategy in bound.values()):
            return None
        return MethodBasedStrategy(
            cast(dict[str, Middleware[Request, Response]], bound), default, self.default_is_explicit
        )

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``): each strategy linked once, with
        whether a request it gets must be marked repeatable (decided once per method)."""
        routes = {
            method: (link(strategy, call_next), method not in IDEMPOTENT_METHODS)
            for method, strategy in self.strategies.items()
        }
        default = link(self.default, call_next)
        default_is_explicit = self.default_is_explicit

        def by_its_method(request: Request) -> Awaitable[Response]:
            try:
                strategy, mark = routes[request.method]
            except KeyError:
                strategy, mark = default, default_is_explicit and request.method not in IDEMPOTENT_METHODS
            if mark and not request.retryable:
                request = request.replace(retryable=True)
            return strategy(request)

        return by_its_method

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)


def bind(
    strategy: Middleware[Request, Response],
    budget: RetryBudget | None,
    classifier: ResponseClassifier | None,
    event_hooks: Sequence[EventHook],
    low_timeout_threshold: float | None = None,
) -> Middleware[Request, Response] | None:
    """``strategy`` given a client's defaults through its ``with_defaults``, when it has one
    (ours do); ``None`` for a strategy that takes them only from the request."""
    with_defaults = getattr(strategy, "with_defaults", None)
    if with_defaults is None:
        return None
    bound: Middleware[Request, Response] | None = with_defaults(
        budget=budget,
        classifier=classifier,
        event_hooks=tuple(event_hooks),
        low_timeout_threshold=low_timeout_threshold,
    )
    return bound
