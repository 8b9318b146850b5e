"""OpenTelemetry metrics after the HTTP semantic conventions: ``OpenTelemetryMetricsProvider``.

    http.client.request.duration                histogram s  one per physical attempt (semconv: a
                                                             retry or hedge is a request of its own)
    aio_pipeline.client.call.duration           histogram s  one per call, all attempts
    aio_pipeline.client.retry_budget.exhausted  counter      extra attempts the budget refused
    aio_pipeline.circuit_breaker.state          gauge        0 closed, 1 half-open, 2 open
    aio_pipeline.circuit_breaker.transitions    counter
    http.server.request.duration                histogram s
    http.server.active_requests                 updowncounter
    aio_pipeline.server.rejected                counter      ``aio_pipeline.reason``: deadline, overloaded

Client attributes: ``http.request.method`` (``_OTHER`` for a non-standard one),
``server.address``, ``server.port``, ``url.scheme``, ``url.template`` (the request's URL
template; semconv's ``http.route`` is server-only), ``http.response.status_code``,
``error.type`` (the status for >= 400, else the library error's class name, ``cancelled`` or
``_OTHER``) and, on attempts, ``aio_pipeline.attempt.kind``. Server: ``http.request.method``,
``http.route`` (the resource's canonical template, left out when no route matched),
``http.response.status_code`` (what went on the wire, as the aiohttp adapter tells it: see
``aio_pipeline.server.aiohttp``; absent when no status is known, as for a response cut
mid-stream or a cancelled request) and ``error.type`` (the status for a 5xx, else the
exception's type when no status is known). ``aio_pipeline.server.rejected`` counts requests
refused before their handler ran, never a handler cancelled at its deadline. Breaker metrics
carry ``aio_pipeline.circuit_breaker.key``. opentelemetry is imported on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Final

from aio_pipeline.chain import Handler, Middleware
from aio_pipeline.circuit import CircuitStateChanged
from aio_pipeline.errors import InvalidRequestError
from aio_pipeline.http import Request, Response
from aio_pipeline.observe import (
    ATTEMPT_KINDS,
    CIRCUIT_STATE_VALUES,
    HTTP_METHODS,
    MAX_ROUTES,
    RouteLabels,
    exchange_of,
    library_error_name,
    rejection,
    server_route,
    status_for,
)
from aio_pipeline.policy import BudgetExhausted, Event, EventHook
from aio_pipeline.propagation import loop_clock

if TYPE_CHECKING:
    from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider, UpDownCounter
    from opentelemetry.metrics import _Gauge as Gauge  # public as create_gauge()'s result only

__all__ = ["OpenTelemetryMetricsProvider"]

INSTALL_HINT: Final = "OpenTelemetry metrics need opentelemetry-api: pip install 'aio-pipeline[otel]'"
#: The semantic conventions' advice for HTTP durations, seconds.
BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)

Attributes = dict[str, str | int]


def _client_attributes(request: Request, routes: RouteLabels) -> Attributes:
    method = request.method if request.method in HTTP_METHODS else "_OTHER"
    attributes: Attributes = {
        "http.request.method": method,
        "url.template": routes(request.route),
    }
    try:
        scheme, _, address = request.authority.partition("://")  # never userinfo
    except InvalidRequestError:
        return attributes
    host, _, port = address.rpartition(":")
    if port.isdigit():
        attributes.update({"server.address": host.strip("[]"), "server.port": int(port), "url.scheme": scheme})
    return attributes


def _histogram(meter: Meter, name: str, description: str) -> Histogram:
    try:
        return meter.create_histogram(name, "s", description, explicit_bucket_boundaries_advisory=BUCKETS)
    except TypeError:  # opentelemetry-api before the advisory parameter
        return meter.create_histogram(name, "s", description)


@dataclass(frozen=True, slots=True)
class _Timed:
    """Records a call (or, with ``attempts``, an attempt) exactly once, also when it raises or is
    cancelled."""

    histogram: Histogram
    attempts: bool
    routes: RouteLabels

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        attributes = _client_attributes(request, self.routes)
        if self.attempts:
            attributes["aio_pipeline.attempt.kind"] = (
                request.attempt_kind if request.attempt_kind in ATTEMPT_KINDS else "other"
            )
        loop = asyncio.get_running_loop()
        started = loop.time()
        attributes["error.type"] = "cancelled"  # replaced below unless cancelled
        try:
            response = await call_next(request)
            del attributes["error.type"]
            attributes["http.response.status_code"] = response.status
            if response.status >= 400:
                attributes["error.type"] = str(response.status)
            return response
        except Exception as error:
            attributes["error.type"] = library_error_name(error, "_OTHER")
            raise
        finally:
            self.histogram.record(loop.time() - started, attributes)


@dataclass(frozen=True, slots=True)
class _BudgetHook:
    counter: Counter
    routes: RouteLabels
    #: The only events it takes, so strategies build no attempt events for it.
    event_types: ClassVar[frozenset[type]] = frozenset({BudgetExhausted})

    def __call__(self, event: Event) -> None:
        if isinstance(event, BudgetExhausted):
            attributes = _client_attributes(event.request, self.routes)
            self.counter.add(1, {**attributes, "aio_pipeline.attempt.kind": event.kind})


@dataclass(frozen=True, slots=True)
class _BreakerHook:
    state: Gauge
    transitions: Counter

    def __call__(self, event: CircuitStateChanged[Any]) -> None:
        attributes = {"aio_pipeline.circuit_breaker.key": str(event.key)}
        self.state.set(CIRCUIT_STATE_VALUES[event.new], attributes)
        self.transitions.add(1, attributes)


@dataclass(frozen=True, slots=True)
class _ServerTimed:
    """Records a server request with the status that went on the wire (told by the server
    adapter's exchange, else what ``call_next`` gave); counts it active while the middlewares
    below run, and counts refusals in ``aio_pipeline.server.rejected``."""

    duration: Histogram
    active: UpDownCounter
    rejected: Counter

    async def __call__(self, request: Any, call_next: Callable[[Any], Awaitable[Any]], /) -> Any:
        attributes: Attributes = {"http.request.method": request.method if request.method in HTTP_METHODS else "_OTHER"}
        self.active.add(1, attributes)
        route = server_route(request)
        if route is not None:
            attributes["http.route"] = route
        exchange = exchange_of(request)
        if exchange is not None and exchange.clock is not None:
            clock, started = exchange.clock, exchange.started  # read by the adapter on arrival
        else:
            clock = loop_clock()
            started = clock()
        status: int | None = None
        error: BaseException | None = None
        try:
            response = await call_next(request)
            status = response.status
            return response
        except BaseException as raised:
            error = raised
            status = status_for(error)  # a guess, used only without the adapter's exchange
            raise
        finally:
            self.active.add(-1, {"http.request.method": attributes["http.request.method"]})
            record = partial(self._record, attributes, error, clock, started)
            if exchange is None:
                record(status, False)
            else:
                exchange.when_sent(record)

    def _record(
        self,
        attributes: Attributes,
        error: BaseException | None,
        clock: Callable[[], float],
        started: float,
        status: int | None,
        aborted: bool,
    ) -> None:
        reason = None if error is None or aborted else rejection(error)  # a cut stream refused nothing
        if reason is not None:
            self.rejected.add(1, {**attributes, "aio_pipeline.reason": reason})
        # Semantic conventions: the status code when one was sent, ``error.type`` the status for
        # a 5xx; with none known (cancelled, or cut mid-response) the exception's type instead.
        if status is not None:
            attributes["http.response.status_code"] = status
            if status >= 500:
                attributes["error.type"] = str(status)
        elif error is not None:
            attributes["error.type"] = library_error_name(error, "_OTHER")
        else:  # the handler answered, then sending its response failed
            attributes["error.type"] = "aborted" if aborted else "cancelled"
        self.duration.record(clock() - started, attributes)


@dataclass(frozen=True, slots=True)
class OpenTelemetryMetricsProvider:
    """The ``MetricsProvider`` for OpenTelemetry.

    Options:
        meter_provider: where the instruments come from; default ``None``: the global one
            (``opentelemetry.metrics.get_meter_provider()``), looked up on first use.
        max_routes: distinct ``url.template`` values each client middleware and hook keeps, a
            count; later ones read ``_OTHER``; default ``MAX_ROUTES``, 200.

    Instruments are created on first use of any method; the SDK returns the same instrument
    for the same name, so providers may share a meter provider. Without opentelemetry-api
    installed, that first use raises ``ImportError`` with the install hint.
    """

    meter_provider: MeterProvider | None = None
    max_routes: int = MAX_ROUTES

    def __post_init__(self) -> None:
        RouteLabels(self.max_routes)  # checks it

    def _routes(self) -> RouteLabels:
        return RouteLabels(self.max_routes, overflow="_OTHER")

    def _meter(self) -> Meter:
        try:
            from opentelemetry import metrics
        except ImportError as error:
            raise ImportError(INSTALL_HINT) from error
        provider = self.meter_provider if self.meter_provider is not None else metrics.get_meter_provider()
        return provider.get_meter("aio_pipeline")

    def client_call_middleware(self) -> Middleware[Request, Response]:
        histogram = _histogram(self._meter(), "aio_pipeline.client.call.duration", "Client calls, all attempts.")
        return _Timed(histogram, attempts=False, routes=self._routes())

    def client_attempt_middleware(self) -> Middleware[Request, Response]:
        histogram = _histogram(self._meter(), "http.client.request.duration", "HTTP client requests.")
        return _Timed(histogram, attempts=True, routes=self._routes())

    def client_event_hook(self) -> EventHook:
        counter = self._meter().create_counter("aio_pipeline.client.retry_budget.exhausted", "{attempt}")
        return _BudgetHook(counter, self._routes())

    def circuit_breaker_hook(self) -> Callable[[CircuitStateChanged[Any]], None]:
        meter = self._meter()
        state = meter.create_gauge("aio_pipeline.circuit_breaker.state", "1", "0 closed, 1 half-open, 2 open")
        return _BreakerHook(state, meter.create_counter("aio_pipeline.circuit_breaker.transitions", "{transition}"))

    def server_middleware(self) -> Middleware[Any, Any]:
        meter = self._meter()
        return _ServerTimed(
            _histogram(meter, "http.server.request.duration", "HTTP server requests."),
            meter.create_up_down_counter("http.server.active_requests", "{request}"),
            meter.create_counter("aio_pipeline.server.rejected", "{request}"),
        )
