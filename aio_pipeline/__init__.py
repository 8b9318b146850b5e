"""aio-pipeline: safe, observable calls between microservices, as a stack of middlewares.

Every public name is re-exported here; the modules behind them are private. httpx is imported
only when ``HttpxTransport`` or ``HttpxPipelineTransport`` is first used, so the package imports
without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._budget import RetryBudget
from ._builders import (
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
from ._circuit import (
    CircuitBreaker,
    CircuitPermit,
    CircuitState,
    CircuitStateChanged,
    DefaultCircuitBreaker,
    NoopCircuitBreaker,
)
from ._classify import DefaultResponseClassifier, ResponseClassifier, ResponseVerdict
from ._client import Client, ResponseContext
from ._context import Context, detached, get_context, set_context
from ._deadline import Deadline
from ._delays import (
    DelaysProvider,
    PercentileBasedRequestAttemptDelaysProvider,
    RequestAttemptDelaysProvider,
    RequestResponseObserver,
    constant_delays,
    exponential_backoff_delays,
    linear_backoff_delays,
    linear_delays,
)
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
from ._events import (
    AttemptFinished,
    AttemptStarted,
    BudgetExhausted,
    Event,
    EventHook,
    HedgeStarted,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryScheduled,
    with_event_hook,
)
from ._headers import Headers
from ._metrics import MetricsProvider
from ._pipeline import Handler, Middleware, Pipeline, compose
from ._priority import Priority
from ._request import Request
from ._response import Response
from ._retry_after import parse_retry_after
from ._transport import Transport
from .adapters.aiohttp_client import aiohttp_client_middlewares
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
from .server.aiohttp import aiohttp_middleware_factory, aiohttp_timeout
from .transports.aiohttp import AioHttpTransport

if TYPE_CHECKING:
    from middlewares.hedging import ParallelStrategy, parallel_strategy
    from middlewares.hedging import ParallelStrategy as ParallelRequestStrategy
    from middlewares.log import ClientLog, ServerLog
    from middlewares.metrics import PROMETHEUS_METRICS_PROVIDER, PrometheusMetricsProvider
    from middlewares.otel import OpenTelemetryMetricsProvider
    from middlewares.retry import (
        DeadlineProvider,
        RetryUntilDeadlineExpiredStrategy,
        SequentialStrategy,
        pass_deadline_through,
        retry_until_deadline_expired,
        sequential_strategy,
        split_deadline_between_attempts,
    )
    from middlewares.retry import SequentialStrategy as SequentialRequestStrategy
    from middlewares.strategy import (
        MethodBasedStrategy,
        PerCallStrategy,
        SingleAttempt,
        single_attempt_strategy,
    )
    from middlewares.strategy import SingleAttempt as SingleAttemptRequestStrategy

    from .adapters.httpx_transport import HttpxPipelineTransport
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
    "delete",
    "detached",
    "exponential_backoff_delays",
    "get",
    "get_context",
    "head",
    "linear_backoff_delays",
    "linear_delays",
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


# Strategies live in ``middlewares``, which imports this package's core: importing them here
# eagerly would make ``import middlewares.retry`` (before ``aio_pipeline``) circular.
_FROM_MIDDLEWARES = {
    # name: (module, attribute); aio-request's class names are aliases of ours.
    "ClientLog": ("middlewares.log", "ClientLog"),
    "DeadlineProvider": ("middlewares.retry", "DeadlineProvider"),
    "MethodBasedStrategy": ("middlewares.strategy", "MethodBasedStrategy"),
    "OpenTelemetryMetricsProvider": ("middlewares.otel", "OpenTelemetryMetricsProvider"),
    "PROMETHEUS_METRICS_PROVIDER": ("middlewares.metrics", "PROMETHEUS_METRICS_PROVIDER"),
    "ParallelRequestStrategy": ("middlewares.hedging", "ParallelStrategy"),
    "ParallelStrategy": ("middlewares.hedging", "ParallelStrategy"),
    "PerCallStrategy": ("middlewares.strategy", "PerCallStrategy"),
    "PrometheusMetricsProvider": ("middlewares.metrics", "PrometheusMetricsProvider"),
    "RetryUntilDeadlineExpiredStrategy": ("middlewares.retry", "RetryUntilDeadlineExpiredStrategy"),
    "SequentialRequestStrategy": ("middlewares.retry", "SequentialStrategy"),
    "SequentialStrategy": ("middlewares.retry", "SequentialStrategy"),
    "ServerLog": ("middlewares.log", "ServerLog"),
    "SingleAttempt": ("middlewares.strategy", "SingleAttempt"),
    "SingleAttemptRequestStrategy": ("middlewares.strategy", "SingleAttempt"),
    "parallel_strategy": ("middlewares.hedging", "parallel_strategy"),
    "pass_deadline_through": ("middlewares.retry", "pass_deadline_through"),
    "retry_until_deadline_expired": ("middlewares.retry", "retry_until_deadline_expired"),
    "sequential_strategy": ("middlewares.retry", "sequential_strategy"),
    "single_attempt_strategy": ("middlewares.strategy", "single_attempt_strategy"),
    "split_deadline_between_attempts": ("middlewares.retry", "split_deadline_between_attempts"),
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
