"""aio-pipeline's middlewares, one module (or package) per concern, imported as
``aio_pipeline.middlewares``; every one is re-exported here.

Each is an async callable ``(request, call_next) -> response`` built from ``aio_pipeline``'s
public names only, and never imports another middleware module. A third-party library is
imported only by the module that adapts it, and only when first used (``prometheus``,
``otel``, ``tracing``, ``log``), so importing this package pulls in none of them.

    deadline         ClientDeadline, ServerDeadline: one deadline per call, read and enforced
    priority         ClientPriority, ServerPriority
    wire             SystemHeaders: what goes on the wire right before the transport
    strategy         SingleAttempt, PerCallStrategy, MethodBasedStrategy
    retry            SequentialStrategy, RetryUntilDeadlineExpiredStrategy (sequential attempts)
    hedging          ParallelStrategy (parallel attempts, first good answer wins)
    circuit_breaker  CircuitBreakerMiddleware
    shedding         LoadShedding (server)
    log              ClientLog, ServerLog (structlog)
    prometheus       PrometheusMetricsProvider (prometheus_client)
    otel             OpenTelemetryMetricsProvider (OpenTelemetry metrics)
    tracing          ClientTracing, ServerTracing (OpenTelemetry traces)
"""

from aio_pipeline.chain import Middleware
from aio_pipeline.http import Request, Response

from .circuit_breaker import CircuitBreakerMiddleware, endpoint_authority
from .deadline import ClientDeadline, ServerDeadline, inbound_timeout
from .hedging import ParallelStrategy, parallel_strategy
from .log import DENIED_HEADERS, ClientLog, ServerLog
from .otel import OpenTelemetryMetricsProvider
from .priority import ClientPriority, ServerPriority
from .prometheus import DEFAULT_BUCKETS, PROMETHEUS_METRICS_PROVIDER, PrometheusMetricsProvider
from .retry import (
    DeadlineProvider,
    RetryUntilDeadlineExpiredStrategy,
    SequentialStrategy,
    pass_deadline_through,
    retry_until_deadline_expired,
    sequential_strategy,
    split_deadline_between_attempts,
)
from .shedding import LoadShedding
from .strategy import MethodBasedStrategy, PerCallStrategy, SingleAttempt, single_attempt_strategy
from .tracing import (
    INSTALL_HINT,
    ClientTracing,
    ClientTracingSetup,
    ServerTracing,
    TraceIds,
    client_tracing_setup,
    current_trace_ids,
    with_trace_ids,
)
from .wire import SystemHeaders, system_headers


def propagation_stack() -> list[Middleware[Request, Response]]:
    """``[ClientDeadline(), ClientPriority(), SystemHeaders()]``: each call gets a deadline (the
    caller's, or the one inherited from the request being served, else 20 s) and a priority,
    and the callee is told both. What the drop-in client adapters run when given no middlewares."""
    return [ClientDeadline(), ClientPriority(), SystemHeaders()]


__all__ = [
    "DEFAULT_BUCKETS",
    "DENIED_HEADERS",
    "INSTALL_HINT",
    "PROMETHEUS_METRICS_PROVIDER",
    "CircuitBreakerMiddleware",
    "ClientDeadline",
    "ClientLog",
    "ClientPriority",
    "ClientTracing",
    "ClientTracingSetup",
    "DeadlineProvider",
    "LoadShedding",
    "MethodBasedStrategy",
    "OpenTelemetryMetricsProvider",
    "ParallelStrategy",
    "PerCallStrategy",
    "PrometheusMetricsProvider",
    "RetryUntilDeadlineExpiredStrategy",
    "SequentialStrategy",
    "ServerDeadline",
    "ServerLog",
    "ServerPriority",
    "ServerTracing",
    "SingleAttempt",
    "SystemHeaders",
    "TraceIds",
    "client_tracing_setup",
    "current_trace_ids",
    "endpoint_authority",
    "inbound_timeout",
    "parallel_strategy",
    "pass_deadline_through",
    "propagation_stack",
    "retry_until_deadline_expired",
    "sequential_strategy",
    "single_attempt_strategy",
    "split_deadline_between_attempts",
    "system_headers",
    "with_trace_ids",
]
