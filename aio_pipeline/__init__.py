"""aio-pipeline: safe, observable calls between microservices, as a stack of middlewares.

The public API, grouped by who reaches for it (each group below is one ``__all__`` block):

    the framework        the middleware shape, ``Pipeline`` and ``Client``, the transports, the
                         request and response, the deadline and priority, the errors
    safety, observed     strategies (single, retry, hedging) and what they decide with (delays,
                         retry budget, classification, Retry-After, events), the circuit
                         breaker, metrics, logs and traces
    drop-ins             our stack inside code you already have: an aiohttp ``ClientSession``,
                         an ``httpx.AsyncClient``, an ``aiohttp.web`` application
    aio-request's names  ``import aio_pipeline as aio_request`` runs code written for it

Where things live (each a public package with documented names)::

    aio_pipeline.chain         Handler, Middleware, compose, link
    aio_pipeline.errors        the exception tree
    aio_pipeline.http          Request, Response, Headers, request builders
    aio_pipeline.propagation   Deadline, Priority, the context and the wire format that carry them
    aio_pipeline.policy        what strategies decide with
    aio_pipeline.circuit       the circuit breaker and its window
    aio_pipeline.observe       metrics protocols, label rules, what went on the wire
    aio_pipeline.extensions    the typed keys of ``Request.extensions``
    aio_pipeline.middlewares   every middleware, one module (or package) per concern
    aio_pipeline.transports    aiohttp and httpx, one error mapping each
    aio_pipeline.adapters      the drop-in client adapters
    aio_pipeline.server        the aiohttp server adapter
    aio_pipeline.facade        aio-request's API, and the standard server stack
    aio_pipeline.testing       a kit for testing your own middleware

One lazy seam: httpx is imported only when ``HttpxTransport`` or ``HttpxPipelineTransport`` is
first used, so the package imports without it. (The middlewares that adapt prometheus_client,
structlog and OpenTelemetry import them when first used, likewise.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The framework
from ._client import Client, Pipeline, ResponseContext
from ._transport import Transport
from .chain import Handler, Middleware, compose, link
from .errors import (
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
from .propagation import Context, Deadline, Priority, detached, get_context, set_context
from .transports.aiohttp import AioHttpTransport

# isort: split
# Safety, observed
from .circuit import (
    CircuitBreaker,
    CircuitPermit,
    CircuitState,
    CircuitStateChanged,
    DefaultCircuitBreaker,
    NoopCircuitBreaker,
)
from .extensions import with_event_hook
from .middlewares.hedging import ParallelStrategy, parallel_strategy
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
from .middlewares.strategy import MethodBasedStrategy, PerCallStrategy, SingleAttempt, single_attempt_strategy
from .middlewares.tracing import ClientTracing, ServerTracing, current_trace_ids
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

# isort: split
# Drop-ins
from .adapters.aiohttp_client import aiohttp_client_middlewares
from .facade import aiohttp_middleware_factory
from .server.aiohttp import aiohttp_timeout

# isort: split
# aio-request's names (its strategy classes' names are aliases of ours)
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
from .middlewares.hedging import ParallelStrategy as ParallelRequestStrategy
from .middlewares.retry import SequentialStrategy as SequentialRequestStrategy
from .middlewares.strategy import SingleAttempt as SingleAttemptRequestStrategy

if TYPE_CHECKING:
    from .adapters.httpx_transport import HttpxPipelineTransport
    from .transports.httpx import HttpxTransport

# Each block sorted on its own (tests/cross/test_public_api.py checks it).
__all__ = [  # the framework
    "AioHttpTransport",
    "CircuitOpenError",
    "Client",
    "ConnectError",
    "ContentTypeError",
    "Context",
    "Deadline",
    "DeadlineExceededError",
    "DeadlineRejectedError",
    "Handler",
    "Headers",
    "HttpxTransport",
    "InvalidRequestError",
    "Middleware",
    "OverloadedError",
    "Pipeline",
    "PipelineError",
    "Priority",
    "RejectedError",
    "Request",
    "Response",
    "ResponseContext",
    "TooManyRedirectsError",
    "Transport",
    "TransportError",
    "compose",
    "delete",
    "detached",
    "get",
    "get_context",
    "head",
    "link",
    "options",
    "patch",
    "patch_json",
    "post",
    "post_json",
    "put",
    "put_json",
    "request",
    "request_json",
    "set_context",
]
__all__ += [  # safety, observed
    "PROMETHEUS_METRICS_PROVIDER",
    "AttemptFinished",
    "AttemptStarted",
    "BudgetExhausted",
    "CircuitBreaker",
    "CircuitPermit",
    "CircuitState",
    "CircuitStateChanged",
    "ClientLog",
    "ClientTracing",
    "DeadlineProvider",
    "DefaultCircuitBreaker",
    "DefaultResponseClassifier",
    "DelaysProvider",
    "Event",
    "EventHook",
    "HedgeStarted",
    "MethodBasedStrategy",
    "MetricsProvider",
    "NoopCircuitBreaker",
    "OpenTelemetryMetricsProvider",
    "ParallelStrategy",
    "PerCallStrategy",
    "PercentileBasedRequestAttemptDelaysProvider",
    "PrometheusMetricsProvider",
    "RequestAttemptDelaysProvider",
    "RequestResponseObserver",
    "ResponseClassifier",
    "ResponseVerdict",
    "RetryAfterGaveUp",
    "RetryAfterHonoured",
    "RetryBudget",
    "RetryScheduled",
    "RetryUntilDeadlineExpiredStrategy",
    "SequentialStrategy",
    "ServerLog",
    "ServerTracing",
    "SingleAttempt",
    "constant_delays",
    "current_trace_ids",
    "exponential_backoff_delays",
    "linear_backoff_delays",
    "linear_delays",
    "parallel_strategy",
    "parse_retry_after",
    "pass_deadline_through",
    "retry_until_deadline_expired",
    "sequential_strategy",
    "single_attempt_strategy",
    "split_deadline_between_attempts",
    "with_event_hook",
]
__all__ += [  # drop-ins
    "HttpxPipelineTransport",
    "aiohttp_client_middlewares",
    "aiohttp_middleware_factory",
    "aiohttp_timeout",
]
__all__ += [  # aio-request's names
    "NOOP_METRICS_PROVIDER",
    "AioHttpDnsResolver",
    "AsyncRequestEnricher",
    "BypassModule",
    "CircuitBreakerMetrics",
    "CircuitBreakerMetricsSnapshot",
    "ClosableResponse",
    "DelegateEndpointProvider",
    "DeprecatedAsyncRequestEnricher",
    "EmptyResponse",
    "EndpointProvider",
    "Header",
    "LowTimeoutModule",
    "Method",
    "NextModuleFunc",
    "NoopMetricsProvider",
    "ParallelRequestStrategy",
    "PathParameters",
    "QueryParameters",
    "RequestEnricher",
    "RequestModule",
    "RequestStrategy",
    "ResponseWithVerdict",
    "RollingCircuitBreakerMetrics",
    "SendRequestFunc",
    "SequentialRequestStrategy",
    "SingleAttemptRequestStrategy",
    "StaticEndpointProvider",
    "TransportModule",
    "UnexpectedContentTypeError",
    "build_pipeline",
    "setup",
    "setup_v2",
]


def __getattr__(name: str) -> Any:
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
