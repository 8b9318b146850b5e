"""The familiar facade: aio-request's API over our pipeline (``import aio_pipeline as aio_request``).

Everything here is assembly: ``setup()`` builds a ``Client`` whose pipeline is made of the same
middlewares a custom pipeline uses; the names below exist so that code written for aio-request
runs unchanged. Re-exported from ``aio_pipeline``.
"""

from ._extras import (
    NOOP_METRICS_PROVIDER,
    AioHttpDnsResolver,
    CircuitBreakerMetrics,
    CircuitBreakerMetricsSnapshot,
    NoopMetricsProvider,
    RollingCircuitBreakerMetrics,
)
from ._familiar import (
    AsyncRequestEnricher,
    ClosableResponse,
    DelegateEndpointProvider,
    DeprecatedAsyncRequestEnricher,
    EmptyResponse,
    EndpointProvider,
    Header,
    Method,
    PathParameters,
    QueryParameters,
    RequestEnricher,
    RequestStrategy,
    StaticEndpointProvider,
    UnexpectedContentTypeError,
)
from ._modules import (
    BypassModule,
    LowTimeoutModule,
    NextModuleFunc,
    RequestModule,
    ResponseWithVerdict,
    SendRequestFunc,
    TransportModule,
    build_pipeline,
)
from ._server import aiohttp_middleware_factory
from ._setup import setup, setup_v2
from ._synthetic import SyntheticResponses, synthetic_response, synthetic_send

__all__ = [
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
    "PathParameters",
    "QueryParameters",
    "RequestEnricher",
    "RequestModule",
    "RequestStrategy",
    "ResponseWithVerdict",
    "RollingCircuitBreakerMetrics",
    "SendRequestFunc",
    "StaticEndpointProvider",
    "SyntheticResponses",
    "TransportModule",
    "UnexpectedContentTypeError",
    "aiohttp_middleware_factory",
    "build_pipeline",
    "setup",
    "setup_v2",
    "synthetic_response",
    "synthetic_send",
]
