"""What the observability backends (logs, Prometheus, OpenTelemetry, tracing) share, so that
none imports another: the ``MetricsProvider`` protocol the client and server stacks place, the
bounded label vocabulary, and the server's ``Exchange``, through which the aiohttp adapter tells
observers the status that went on the wire."""

from ._exchange import CURRENT_EXCHANGE, EXPIRED_STATUS, Exchange, exchange_of, rejection, status_for
from ._labels import (
    ATTEMPT_KINDS,
    CIRCUIT_STATE_VALUES,
    HTTP_METHODS,
    MAX_ROUTES,
    RouteLabels,
    library_error_name,
    server_route,
    service_name,
)
from ._metrics import MetricsProvider

__all__ = [
    "ATTEMPT_KINDS",
    "CIRCUIT_STATE_VALUES",
    "CURRENT_EXCHANGE",
    "EXPIRED_STATUS",
    "HTTP_METHODS",
    "MAX_ROUTES",
    "Exchange",
    "MetricsProvider",
    "RouteLabels",
    "exchange_of",
    "library_error_name",
    "rejection",
    "server_route",
    "service_name",
    "status_for",
]
