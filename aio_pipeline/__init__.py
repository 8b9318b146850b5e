"""aio-pipeline: safe, observable calls between microservices, as a stack of middlewares.

Every public name is re-exported here; the modules behind them are private. httpx is imported
only when ``HttpxTransport`` or ``HttpxPipelineTransport`` is first used, so the package imports
without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._client import Client, Pipeline, ResponseContext
from ._errors import (
    CircuitOpenError,
    ConnectError,
    ContentTypeError,
    DeadlineExceededError,
    DeadlineRejectedError,
    InvalidRequestError,
    OverloadedError,
    PipelineError,
    RejectedError,
    TooManyRedirectsError,
    TransportError,
)
from ._pipeline import Handler, Middleware, compose, link
from ._transport import Transport
from .adapters.aiohttp_client import aiohttp_client_middlewares
from .circuit import (
    CircuitBreaker,
    CircuitPermit,
    CircuitState,
    CircuitStateChanged,
    DefaultCircuitBreaker,
    NoopCircuitBreaker,
)
from .extensions import with_event_hook
from .facade import (
    NOOP_METRICS_PROVIDER,
    AioHttpDnsResolver,
    AsyncRequestEnricher,
    BypassModule,
    CircuitBreakerMetrics,
    CircuitBreakerMetricsSnapshot,
    ClosableResponse,
    DelegateEndpointProvider,
    DeprecatedAsyncRequestEnricher,
    EmptyResponse,
    EndpointProvider,
    Header,
    LowTimeoutModule,
    Method,
    NextModuleFunc,
    NoopMetricsProvider,
    PathParameters,
    QueryParameters,
    RequestEnricher,
    RequestModule,
    RequestStrategy,
    ResponseWithVerdict,
    RollingCircuitBreakerMetrics,
    SendRequestFunc,
    StaticEndpointProvider,
    TransportModule,
    UnexpectedContentTypeError,
    build_pipeline,
    setup,
    setup_v2,
)
from .http import (
    Headers,
    Request,
    Response,
    delete,
    get,
    head,
    options,
    patch,
    patch_json,
    post,
    post_json,
    put,
    put_json,
    request,
    request_json,
)
from .observe import MetricsProvider
from .policy import (
    AttemptFinished,
    AttemptStarted,
    BudgetExhausted,
    DefaultResponseClassifier,
    DelaysProvider,
    Event,
    EventHook,
    HedgeStarted,
    PercentileBasedRequestAttemptDelaysProvider,
    RequestAttemptDelaysProvider,
    RequestResponseObserver,
    ResponseClassifier,
    ResponseVerdict,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryBudget,
    RetryScheduled,
    constant_delays,
    exponential_backoff_delays,
    linear_backoff_delays,
    linear_delays,
    parse_retry_after,
)
from .propagation import Context, Deadline, Priority, detached, get_context, set_context
from .server.aiohttp import aiohttp_middleware_factory, aiohttp_timeout
from .transports.aiohttp import AioHttpTransport

if TYPE_CHECKING:
    from .adapters.httpx_transport import HttpxPipelineTransport
    from .middlewares.hedging import ParallelStrategy, parallel_strategy
    from .middlewares.hedging import ParallelStrategy as ParallelRequestStrategy
    from .middlewares.log import ClientLog, ServerLog
    from .middlewares.otel import OpenTelemetryMetricsProvider
    from .middlewares.prometheus import PROMETHEUS_METRICS_PROVIDER, PrometheusMetricsProvider
    from .middlewares.retry import (
        DeadlineProvider,
        RetryUntilDeadlineExpiredStrategy,
        SequentialStrategy,
        pass_deadline_through,
        retry_until_deadline_expired,
        sequential_strategy,
        split_deadline_between_attempts,
    )
    from .middlewares.retry import SequentialStrategy as SequentialRequestStrategy
    from .middlewares.strategy import (
        MethodBasedStrategy,
        PerCallStrategy,
        SingleAttempt,
        single_attempt_strategy,
    )
    from .middlewares.strategy import SingleAttempt as SingleAttemptRequestStrategy
    from .middlewares.tracing import ClientTracing, ServerTracing, current_trace_ids
    from .transports.httpx import HttpxTransport

__all__ = [  # noqa: RUF022 -- plainly sorted(), as tests/test_public_api.py checks
    "AioHttpDnsResolver",
    "AioHttpTransport",
    "AsyncRequestEnricher",
    "AttemptFinished",
    "AttemptStarted",
    "BudgetExhausted",
    "BypassModule",
    "CircuitBreaker",
    "CircuitBreakerMetrics",
    "CircuitBreakerMetricsSnapshot",
    "CircuitOpenError",
    "CircuitPermit",
    "CircuitState",
    "CircuitStateChanged",
    "Client",
    "ClientLog",
    "ClientTracing",
    "ClosableResponse",
    "ConnectError",
    "ContentTypeError",
    "Context",
    "Deadline",
    "DeadlineExceededError",
    "DeadlineProvider",
    "DeadlineRejectedError",
    "DefaultCircuitBreaker",
    "DefaultResponseClassifier",
    "DelaysProvider",
    "DelegateEndpointProvider",
    "DeprecatedAsyncRequestEnricher",
    "EmptyResponse",
    "EndpointProvider",
    "Event",
    "EventHook",
    "Handler",
    "Header",
    "Headers",
    "HedgeStarted",
    "HttpxPipelineTransport",
    "HttpxTransport",
    "InvalidRequestError",
    "LowTimeoutModule",
    "Method",
    "MethodBasedStrategy",
    "MetricsProvider",
    "Middleware",
    "NOOP_METRICS_PROVIDER",
    "NextModuleFunc",
    "NoopCircuitBreaker",
    "NoopMetricsProvider",
    "OpenTelemetryMetricsProvider",
    "OverloadedError",
    "PROMETHEUS_METRICS_PROVIDER",
    "ParallelRequestStrategy",
    "ParallelStrategy",
    "PathParameters",
    "PerCallStrategy",
    "PercentileBasedRequestAttemptDelaysProvider",
    "Pipeline",
    "PipelineError",
    "Priority",
    "PrometheusMetricsProvider",
    "QueryParameters",
    "RejectedError",
    "Request",
    "RequestAttemptDelaysProvider",
    "RequestEnricher",
    "RequestModule",
    "RequestResponseObserver",
    "RequestStrategy",
    "Response",
    "ResponseClassifier",
    "ResponseContext",
    "ResponseVerdict",
    "ResponseWithVerdict",
    "RetryAfterGaveUp",
    "RetryAfterHonoured",
    "RetryBudget",
    "RetryScheduled",
    "RetryUntilDeadlineExpiredStrategy",
    "RollingCircuitBreakerMetrics",
    "SendRequestFunc",
    "SequentialRequestStrategy",
    "SequentialStrategy",
    "ServerLog",
    "ServerTracing",
    "SingleAttempt",
    "SingleAttemptRequestStrategy",
    "StaticEndpointProvider",
    "TooManyRedirectsError",
    "Transport",
    "TransportError",
    "TransportModule",
    "UnexpectedContentTypeError",
    "aiohttp_client_middlewares",
    "aiohttp_middleware_factory",
    "aiohttp_timeout",
    "build_pipeline",
    "compose",
    "constant_delays",
    "current_trace_ids",
    "delete",
    "detached",
    "exponential_backoff_delays",
    "get",
    "get_context",
    "head",
    "linear_backoff_delays",
    "linear_delays",
    "link",
    "options",
    "parallel_strategy",
    "parse_retry_after",
    "pass_deadline_through",
    "patch",
    "patch_json",
    "post",
    "post_json",
    "put",
    "put_json",
    "request",
    "request_json",
    "retry_until_deadline_expired",
    "sequential_strategy",
    "set_context",
    "setup",
    "setup_v2",
    "single_attempt_strategy",
    "split_deadline_between_attempts",
    "with_event_hook",
]


# Strategies live in ``aio_pipeline.middlewares``, which import this package's public names:
# importing them here eagerly would be circular (this module is not finished yet when they run).
_FROM_MIDDLEWARES = {
    # name: (module, attribute); aio-request's class names are aliases of ours.
    "ClientLog": ("aio_pipeline.middlewares.log", "ClientLog"),
    "ClientTracing": ("aio_pipeline.middlewares.tracing", "ClientTracing"),
    "DeadlineProvider": ("aio_pipeline.middlewares.retry", "DeadlineProvider"),
    "MethodBasedStrategy": ("aio_pipeline.middlewares.strategy", "MethodBasedStrategy"),
    "OpenTelemetryMetricsProvider": ("aio_pipeline.middlewares.otel", "OpenTelemetryMetricsProvider"),
    "PROMETHEUS_METRICS_PROVIDER": ("aio_pipeline.middlewares.prometheus", "PROMETHEUS_METRICS_PROVIDER"),
    "ParallelRequestStrategy": ("aio_pipeline.middlewares.hedging", "ParallelStrategy"),
    "ParallelStrategy": ("aio_pipeline.middlewares.hedging", "ParallelStrategy"),
    "PerCallStrategy": ("aio_pipeline.middlewares.strategy", "PerCallStrategy"),
    "PrometheusMetricsProvider": ("aio_pipeline.middlewares.prometheus", "PrometheusMetricsProvider"),
    "RetryUntilDeadlineExpiredStrategy": ("aio_pipeline.middlewares.retry", "RetryUntilDeadlineExpiredStrategy"),
    "SequentialRequestStrategy": ("aio_pipeline.middlewares.retry", "SequentialStrategy"),
    "SequentialStrategy": ("aio_pipeline.middlewares.retry", "SequentialStrategy"),
    "ServerLog": ("aio_pipeline.middlewares.log", "ServerLog"),
    "ServerTracing": ("aio_pipeline.middlewares.tracing", "ServerTracing"),
    "SingleAttempt": ("aio_pipeline.middlewares.strategy", "SingleAttempt"),
    "SingleAttemptRequestStrategy": ("aio_pipeline.middlewares.strategy", "SingleAttempt"),
    "parallel_strategy": ("aio_pipeline.middlewares.hedging", "parallel_strategy"),
    "pass_deadline_through": ("aio_pipeline.middlewares.retry", "pass_deadline_through"),
    "retry_until_deadline_expired": ("aio_pipeline.middlewares.retry", "retry_until_deadline_expired"),
    "sequential_strategy": ("aio_pipeline.middlewares.retry", "sequential_strategy"),
    "current_trace_ids": ("aio_pipeline.middlewares.tracing", "current_trace_ids"),
    "single_attempt_strategy": ("aio_pipeline.middlewares.strategy", "single_attempt_strategy"),
    "split_deadline_between_attempts": ("aio_pipeline.middlewares.retry", "split_deadline_between_attempts"),
}


def __getattr__(name: str) -> Any:
    if name in _FROM_MIDDLEWARES:
        module, attribute = _FROM_MIDDLEWARES[name]
        return getattr(importlib.import_module(module), attribute)
    # Lazy, so that importing the package never imports httpx. Without httpx installed the
    # name still exists (``from aio_pipeline import *`` works) and fails when instantiated.
    if name == "HttpxTransport":
        try:
            from .transports.httpx import HttpxTransport
        except ImportError as error:
            return _missing_extra(name, "httpx", error)
        return HttpxTransport
    if name == "HttpxPipelineTransport":
        try:
            from .adapters.httpx_transport import HttpxPipelineTransport
        except ImportError as error:
            return _missing_extra(name, "httpx", error)
        return HttpxPipelineTransport
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _missing_extra(name: str, extra: str, error: ImportError) -> type:
    def __init__(self: object, *args: object, **kwargs: object) -> None:
        raise ImportError(f"{name} needs the {extra!r} extra: pip install 'aio-pipeline[{extra}]'") from error

    return type(name, (), {"__init__": __init__, "__doc__": f"Unavailable: install aio-pipeline[{extra}]."})
