"""``setup()`` / ``setup_v2()``: aio-request's client, assembled from our middlewares.

The pipeline it builds, outermost first::

    SyntheticResponses -> call_middlewares -> [metrics: call] -> ClientDeadline -> ClientPriority
      -> [endpoint_provider] -> PerCallStrategy(MethodBasedStrategy(safe | unsafe))
      -> [metrics: attempt] -> [CircuitBreakerMiddleware] -> [request_enricher] -> middlewares
      -> SystemHeaders -> transport

Bracketed steps are present only when their option is given. ``examples/custom_pipeline.py``
builds the same thing by hand.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .._client import Client, Pipeline
from .._transport import Transport
from ..chain import Handler, Middleware, checked_middlewares
from ..circuit import CircuitBreaker
from ..http import Request, Response, check_endpoint
from ..middlewares.circuit_breaker import CircuitBreakerMiddleware
from ..middlewares.deadline import ClientDeadline
from ..middlewares.priority import ClientPriority
from ..middlewares.retry import sequential_strategy
from ..middlewares.strategy import MethodBasedStrategy, PerCallStrategy, single_attempt_strategy
from ..middlewares.tracing import client_tracing_setup
from ..middlewares.wire import SystemHeaders
from ..observe import MetricsProvider
from ..policy import ResponseClassifier, RetryBudget, check_kind
from ..propagation import DEFAULT_TIMEOUT, LOW_TIMEOUT_THRESHOLD, Priority
from ._extras import NoopMetricsProvider
from ._familiar import EndpointProvider, Method, RequestStrategy, StaticEndpointProvider
from ._modules import as_middleware
from ._synthetic import SyntheticResponses

__all__ = ["setup", "setup_v2"]

#: Methods the default ``safe_method_strategy`` applies to; every other one is sent once.
SAFE_METHODS = (Method.GET, Method.HEAD, Method.OPTIONS)

RequestEnricher = Callable[..., Request | Awaitable[Request]]


@dataclass(frozen=True, slots=True)
class _ResolveEndpoint:
    provider: EndpointProvider

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        endpoint = str(await self.provider.get())  # a yarl.URL, as aio-request's providers give
        check_endpoint(endpoint)
        return await call_next(request.replace(endpoint=endpoint))


@dataclass(frozen=True, slots=True)
class _Enrich:
    """Per attempt: ``enricher(request)``, or the older ``enricher(request, emit_system_headers)``
    given ``False`` as aio-request's ``setup_v2`` does (the system headers are ours to write);
    sync or async."""

    enricher: RequestEnricher
    takes_flag: bool

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        enriched = self.enricher(request, False) if self.takes_flag else self.enricher(request)
        if inspect.isawaitable(enriched):
            enriched = await enriched
        return await call_next(enriched)


def _positional_count(function: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds)


def _observers(metrics_provider: MetricsProvider | None, call_middlewares: Sequence[object]) -> list[object]:
    """Who wants the strategies' events and the breaker's changes: the metrics provider and any
    call middleware offering the same hooks (``middlewares.log.ClientLog``)."""
    return [o for o in (metrics_provider, *call_middlewares) if o is not None and hasattr(o, "client_event_hook")]


def setup(
    *,
    transport: Transport,
    endpoint: object = None,
    endpoint_provider: EndpointProvider | None = None,
    safe_method_strategy: RequestStrategy | None = None,
    unsafe_method_strategy: RequestStrategy | None = None,
    response_classifier: ResponseClassifier | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    priority: Priority = Priority.NORMAL,
    low_timeout_threshold: float = LOW_TIMEOUT_THRESHOLD,
    emit_system_headers: bool = True,
    request_enricher: RequestEnricher | None = None,
    metrics_provider: MetricsProvider | None = None,
    circuit_breaker: CircuitBreaker[Any, Any] | None = None,
    retry_budget: RetryBudget | None = None,
    middlewares: Iterable[Middleware[Request, Response]] = (),
    call_middlewares: Iterable[Middleware[Request, Response]] = (),
    tracing: bool = False,
    tracer_provider: Any = None,
) -> Client:
    """A client for ``endpoint`` (or ``endpoint_provider``) over ``transport``, as aio-request's.

    A strategy given for safe or unsafe methods is your explicit choice: it repeats POST and
    PATCH too. ``client.request(..., strategy=...)`` overrides both for one call. Failures never
    raise: they come back as synthetic responses (see ``SyntheticResponses``).

    Options:
        transport: where requests are sent (e.g. ``AioHttpTransport(session)``); required.
        endpoint: an absolute http(s) URL every call goes to; give it or ``endpoint_provider``,
            not both; default ``None``.
        endpoint_provider: an ``EndpointProvider`` asked for the endpoint on every call; default
            ``None``.
        safe_method_strategy: the strategy for GET, HEAD and OPTIONS; default ``None``: 3
            sequential attempts with ``linear_backoff_delays()``.
        unsafe_method_strategy: the strategy for every other method; default ``None``: a single
            attempt.
        response_classifier: which outcomes are failures, for strategies and breaker; default
            ``None``: ``DefaultResponseClassifier()``.
        timeout: deadline of a call with none given nor inherited, seconds; default 20.
        priority: priority of a call with none given nor inherited; default NORMAL.
        low_timeout_threshold: no call, and no attempt of it, starts with less time left than
            this, seconds (a synthetic 408 with ``X-Do-Not-Retry`` when the call itself is
            refused); default 0.005 (5 ms).
        emit_system_headers: write X-Request-Timeout/-Priority/-Attempt; default ``True``.
        request_enricher: ``f(request)`` (or the older ``f(request, emit_system_headers)``,
            given ``False``), sync or async, applied to every attempt; default none.
        metrics_provider: records calls, attempts, the strategies' events and the breaker's
            changes; ``NOOP_METRICS_PROVIDER`` records nothing; default ``None``: the
            transport's ``metrics_provider``, else none.
        circuit_breaker: one sample per attempt, keyed by endpoint; default none.
        retry_budget: shared by every strategy of this client; default ``None``: a
            ``RetryBudget()`` (20% of calls + 10/s over 10 s).
        middlewares: yours, per attempt, just before the system headers are written (an
            aio-request ``RequestModule`` is taken too); default none.
        call_middlewares: yours, once per call, outermost (e.g. ``ClientLog()``); default none.
        tracing: an OpenTelemetry span per call and a CLIENT span per attempt, its context
            sent to the callee (``middlewares.tracing``); needs opentelemetry-api; default
            ``False``.
        tracer_provider: where the spans go, only with ``tracing=True``; default ``None``:
            OpenTelemetry's global one.
    """
    if (endpoint is None) == (endpoint_provider is None):
        raise ValueError("give exactly one of endpoint and endpoint_provider")
    if not isinstance(priority, Priority):
        raise ValueError(f"priority must be a Priority (HIGH, NORMAL or LOW), got {priority!r}")
    check_kind("endpoint_provider", endpoint_provider, EndpointProvider)
    check_kind("response_classifier", response_classifier, ResponseClassifier)
    check_kind("circuit_breaker", circuit_breaker, CircuitBreaker)
    check_kind("retry_budget", retry_budget, RetryBudget)
    for name, function in [
        ("safe_method_strategy", safe_method_strategy),
        ("unsafe_method_strategy", unsafe_method_strategy),
        ("request_enricher", request_enricher),
    ]:
        if function is not None and not callable(function):
            raise ValueError(f"{name} must be callable, got {function!r}")
    middlewares = checked_middlewares((as_middleware(m) for m in middlewares), "middlewares")
    call_middlewares = checked_middlewares(call_middlewares, "call_middlewares")
    provider = endpoint_provider or StaticEndpointProvider(endpoint)  # type: ignore[arg-type]  # checked there
    if metrics_provider is None:
        metrics_provider = getattr(transport, "metrics_provider", None)
    if isinstance(metrics_provider, NoopMetricsProvider):
        metrics_provider = None  # records nothing: no layer for it
    if not isinstance(tracing, bool):
        raise ValueError(f"tracing must be True or False, got {tracing!r}")
    if tracer_provider is not None and not tracing:
        raise ValueError("tracer_provider is used only with tracing=True")
    traced = None
    if tracing:
        traced = client_tracing_setup(
            tracer_provider=tracer_provider, metrics_provider=metrics_provider, call_middlewares=call_middlewares
        )
        metrics_provider, call_middlewares = traced.metrics_provider, tuple(traced.call_middlewares)
    observers = _observers(metrics_provider, (*call_middlewares, *([traced.observer] if traced else [])))
    strategy = MethodBasedStrategy(
        dict.fromkeys(SAFE_METHODS, safe_method_strategy or sequential_strategy(attempts_count=3)),
        default=unsafe_method_strategy or single_attempt_strategy(),
        # The user's own choice for unsafe methods is theirs to make: it may repeat a POST.
        default_is_explicit=unsafe_method_strategy is not None,
    )
    stack: list[Middleware[Request, Response] | None] = [
        SyntheticResponses(),
        traced.call_middleware if traced is not None else None,
        *call_middlewares,
        metrics_provider.client_call_middleware() if metrics_provider is not None else None,
        ClientDeadline(timeout=timeout, low_timeout_threshold=low_timeout_threshold),
        ClientPriority(default=priority),
        _ResolveEndpoint(provider) if endpoint_provider is not None else None,
        PerCallStrategy(
            strategy,
            budget=retry_budget or RetryBudget(),
            classifier=response_classifier,
            event_hooks=[o.client_event_hook() for o in observers],  # type: ignore[attr-defined]
            low_timeout_threshold=low_timeout_threshold,
        ),
        traced.attempt_middleware if traced is not None else None,
        metrics_provider.client_attempt_middleware() if metrics_provider is not None else None,
        _breaker(circuit_breaker, response_classifier, observers, CircuitBreakerMiddleware),
        _Enrich(request_enricher, _positional_count(request_enricher) >= 2) if request_enricher else None,
        *middlewares,
        SystemHeaders(emit_system_headers=emit_system_headers),
    ]
    pipeline = Pipeline(transport, [m for m in stack if m is not None])
    static = provider.endpoint if isinstance(provider, StaticEndpointProvider) else None
    return Client(static, pipeline)


def _breaker(
    breaker: CircuitBreaker[Any, Any] | None,
    classifier: ResponseClassifier | None,
    observers: list[object],
    middleware: Callable[..., Middleware[Request, Response]],
) -> Middleware[Request, Response] | None:
    if breaker is None:
        return None
    subscribe = getattr(breaker, "subscribe", None)
    if subscribe is not None:
        for observer in observers:
            subscribe(observer.circuit_breaker_hook())  # type: ignore[attr-defined]
    return middleware(breaker, classifier=classifier) if classifier is not None else middleware(breaker)


def setup_v2(*, request_enricher: RequestEnricher | None = None, **kwargs: Any) -> Client:
    """aio-request's older entry point: ``setup()`` with the same options.

    Supported, with no deprecation warning. Every other keyword goes to ``setup()`` as it is.

    Options:
        request_enricher: as ``setup()``'s: ``f(request)`` or the older
            ``f(request, emit_system_headers)``, given ``False``; default ``None``.
    """
    return setup(request_enricher=request_enricher, **kwargs)
