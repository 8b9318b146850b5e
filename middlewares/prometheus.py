"""Prometheus metrics for the client and the server: ``PrometheusMetricsProvider``.

    client: [call] deadline priority strategy [attempt] breaker wire transport
    server: [server] deadline priority ... handler           (seconds throughout)

    aio_pipeline_client_request_duration_seconds      histogram  method endpoint route status
    aio_pipeline_client_attempt_duration_seconds      histogram  method endpoint route status kind
    aio_pipeline_client_retry_budget_exhausted_total  counter    method endpoint route kind
    aio_pipeline_circuit_breaker_state                gauge      endpoint  (0 closed, 1 half-open, 2 open)
    aio_pipeline_circuit_breaker_transitions_total    counter    endpoint
    aio_pipeline_server_request_duration_seconds      histogram  method route status client
    aio_pipeline_server_requests_in_flight            gauge      method route
    aio_pipeline_server_rejected_total                counter    method route client reason

Every label has a bounded set of values: ``method`` is a standard method or ``other``;
``endpoint`` is ``scheme://host:port`` (never userinfo); ``route`` the URL template (client)
or the aiohttp resource's canonical template, ``unmatched`` when no route matched (server);
``client`` the caller's ``X-Service-Name`` if short and plain, ``invalid`` if not, ``unknown``
when absent; ``reason`` is ``deadline`` or ``overloaded``. ``status`` is the HTTP status, or
for a call that raised: the name of the library error (``DeadlineExceededError``,
``CircuitOpenError``, ``ConnectError``, ...), ``error`` for any other exception, ``cancelled``
when the caller cancelled. On the server ``status`` is what went on the wire, as the aiohttp
adapter tells it (``aio_pipeline.server.aiohttp`` says how it decides): the adapter's
``expired_status``/``503`` for its answers, a ``FileResponse``'s status as prepared, 504/500 for
exceptions as aiohttp answers them; ``aborted`` when an error cut a response that had started
(its status is not known), ``cancelled`` when nothing was sent. ``server_rejected`` counts only
requests refused before their handler ran; a handler cancelled at its deadline is a 408 request.
Without the adapter (a middleware driven directly) the status is guessed from what it saw.

Exemplars: with the ``trace_ids`` option (``middlewares.tracing.current_trace_ids``, which
``setup(tracing=True)`` and ``aiohttp_middleware_factory(tracing=True)`` set), each histogram
bucket keeps the trace of its latest observation made inside a sampled span, shown in the
OpenMetrics exposition (``prometheus_client.openmetrics.exposition``) as
``# {trace_id="...",span_id="..."} seconds timestamp``: a slow bucket links to a trace. The
classic text format has no exemplars. Without the option nothing is looked up per observation.

prometheus-client is imported on first use, never at import time.
"""

from __future__ import annotations

import contextlib
import math
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Final, cast

from aio_pipeline.chain import Handler, Middleware
from aio_pipeline.circuit import CircuitStateChanged
from aio_pipeline.errors import InvalidRequestError
from aio_pipeline.http import Request, Response, check_header_name
from aio_pipeline.observe import (
    ATTEMPT_KINDS,
    CIRCUIT_STATE_VALUES,
    CURRENT_EXCHANGE,
    HTTP_METHODS,
    MAX_ROUTES,
    RouteLabels,
    library_error_name,
    rejection,
    server_route,
    service_name,
    status_for,
)
from aio_pipeline.policy import BudgetExhausted, Event, EventHook
from aio_pipeline.propagation import SERVICE_NAME_HEADER, loop_clock

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["DEFAULT_BUCKETS", "PROMETHEUS_METRICS_PROVIDER", "PrometheusMetricsProvider"]

#: Histogram buckets, seconds: 5 ms to 20 s (the default timeout).
DEFAULT_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)
INSTALL_HINT: Final = "Prometheus metrics need prometheus-client: pip install 'aio-pipeline[prometheus]'"
#: Where a registry keeps its metrics; see ``_Metrics.on``.
_ATTRIBUTE: Final = "_aio_pipeline_metrics"


def _method_label(method: str) -> str:
    return method if method in HTTP_METHODS else "other"


def _client_labels(request: Request, routes: RouteLabels) -> tuple[str, str, str]:
    """``method``, ``endpoint`` and ``route``: of an absolute URL only its path, so neither
    userinfo, host nor query ever becomes a label, and the route from the client's bounded set."""
    try:
        endpoint = request.authority
    except InvalidRequestError:
        endpoint = "unknown"
    return _method_label(request.method), endpoint, routes(request.route)


#: Distinct ``(method, url, endpoint)`` whose labels one middleware remembers; past that they are
#: worked out per call (still bounded by ``RouteLabels``), so no input grows the cache for ever.
_LABEL_CACHE_SIZE: Final = 1024


class _Histogram:
    """A histogram family whose children are plain lists, exported by a collector of our own.

    prometheus-client's ``Histogram`` takes locks and scans its buckets in Python on every
    ``observe`` (about seven calls); a client observes twice per call and a server once per
    request, so here a child is a list (a count per bucket, then the sum) that an observation
    updates with one C ``bisect`` and two additions. Children are keyed by their label values,
    as bounded as the label sets themselves. Observations come from the event loop's thread;
    a scrape from another thread reads each list as it is at that moment, so a count and its
    sum may be one observation apart.

    ``exemplars`` holds, per child, each bucket's latest exemplar, ``(trace_id, span_id,
    seconds, unix time)``; only observations made with trace ids write there (``exemplify``).
    """

    def __init__(self, name: str, documentation: str, labelnames: list[str], bounds: tuple[float, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.bounds = bounds
        self.children: dict[tuple[str, ...], list[float]] = {}
        self.exemplars: dict[tuple[str, ...], list[tuple[str, str, float, float] | None]] = {}

    def child(self, labels: tuple[str, ...]) -> list[float]:
        """The counts of ``labels``: one per bucket, ``+Inf`` last, then the sum."""
        values = self.children.get(labels)
        if values is None:
            values = self.children[labels] = [0.0] * (len(self.bounds) + 2)
        return values

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        values = self.child(labels)
        values[bisect_left(self.bounds, seconds)] += 1
        values[-1] += seconds

    def exemplify(self, labels: tuple[str, ...], bucket: int, ids: tuple[str, str], seconds: float) -> None:
        """Make the observation of ``seconds`` just counted in ``bucket`` (its index in the
        child) that bucket's exemplar, with the trace and span ids it was made under."""
        exemplars = self.exemplars.get(labels)
        if exemplars is None:
            exemplars = self.exemplars[labels] = [None] * (len(self.bounds) + 1)
        exemplars[bucket] = (*ids, seconds, time.time())

    def describe(self) -> list[Any]:
        from prometheus_client.core import HistogramMetricFamily

        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[Any]:
        from prometheus_client.core import HistogramMetricFamily
        from prometheus_client.samples import Exemplar
        from prometheus_client.utils import floatToGoString

        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        go_string = cast(Callable[[float], str], floatToGoString)  # untyped: the exposition's own format
        edges = [*(go_string(bound) for bound in self.bounds), "+Inf"]
        for labels, values in list(self.children.items()):
            snapshot = values[:]  # one C copy: the loop may observe meanwhile
            exemplars = list(self.exemplars.get(labels, ()))
            running = 0.0
            buckets: list[Any] = []  # (edge, count) pairs, or triples with the exemplar
            for index, (edge, count) in enumerate(zip(edges, snapshot, strict=False)):
                running += count
                exemplar = exemplars[index] if index < len(exemplars) else None
                if exemplar is None:
                    buckets.append((edge, running))
                else:
                    trace_id, span_id, seconds, at = exemplar
                    buckets.append((edge, running, Exemplar({"trace_id": trace_id, "span_id": span_id}, seconds, at)))
            family.add_metric(list(labels), buckets, snapshot[-1])
        return [family]


class _Gauge:
    """A gauge family of plain numbers per label set, exported by a collector of our own (see
    ``_Histogram``): the server counts requests in flight twice per request."""

    def __init__(self, name: str, documentation: str, labelnames: list[str]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self.values: dict[tuple[str, ...], float] = {}

    def add(self, labels: tuple[str, ...], amount: float) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def describe(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        return [GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value in list(self.values.items()):
            family.add_metric(list(labels), value)
        return [family]


class _Metrics:
    """The metric objects of one registry, created once and kept on the registry itself."""

    def __init__(self, registry: CollectorRegistry, buckets: tuple[float, ...]) -> None:
        from prometheus_client import Counter, Gauge

        def make(kind: Any, name: str, doc: str, labels: list[str], **options: Any) -> Any:
            if kind is _Histogram:
                collector = _Histogram(f"aio_pipeline_{name}", doc, labels, buckets)
                registry.register(collector)  # a Collector by its describe() and collect()
                return collector
            if kind is _Gauge:
                gauge = _Gauge(f"aio_pipeline_{name}", doc, labels)
                registry.register(gauge)
                return gauge
            return kind(f"aio_pipeline_{name}", doc, labels, registry=registry, **options)

        client, server = ["method", "endpoint", "route"], ["method", "route"]
        self.buckets = buckets
        self.call: _Histogram = make(
            _Histogram, "client_request_duration_seconds", "Client calls, seconds.", [*client, "status"]
        )
        self.attempt: _Histogram = make(
            _Histogram, "client_attempt_duration_seconds", "Client attempts, seconds.", [*client, "status", "kind"]
        )
        self.budget: Counter = make(
            Counter, "client_retry_budget_exhausted", "Extra attempts the retry budget refused.", [*client, "kind"]
        )
        self.state: Gauge = make(
            Gauge, "circuit_breaker_state", "Circuit state: 0 closed, 1 half-open, 2 open.", ["endpoint"]
        )
        self.transitions: Counter = make(Counter, "circuit_breaker_transitions", "Circuit state changes.", ["endpoint"])
        self.server: _Histogram = make(
            _Histogram, "server_request_duration_seconds", "Server requests, seconds.", [*server, "status", "client"]
        )
        self.in_flight: _Gauge = make(_Gauge, "server_requests_in_flight", "Server requests being handled.", server)
        self.rejected: Counter = make(
            Counter, "server_rejected", "Server requests refused.", [*server, "client", "reason"]
        )

    @classmethod
    def on(cls, registry: CollectorRegistry | None, buckets: tuple[float, ...]) -> _Metrics:
        # Kept as an attribute of the registry, not in a module-level or class-level dict: the
        # metrics belong to the registry (registering twice is what prometheus refuses), live and
        # die with it, and every provider on it, the lazy default one included, finds them.
        try:
            import prometheus_client
        except ImportError as error:
            raise ImportError(INSTALL_HINT) from error
        registry = prometheus_client.REGISTRY if registry is None else registry
        metrics: _Metrics | None = getattr(registry, _ATTRIBUTE, None)
        if metrics is None:
            metrics = cls(registry, buckets)
            setattr(registry, _ATTRIBUTE, metrics)
        elif metrics.buckets != buckets:
            raise ValueError(f"buckets {buckets} differ from {metrics.buckets}, already used on this registry")
        return metrics


def _child(metric: Any, cache: dict[tuple[str, ...], Any], labels: tuple[str, ...]) -> Any:
    """``metric.labels(*labels)``, looked up in ``cache`` first: ``labels()`` validates and takes
    a lock on every call, a dict look-up does not. As bounded as the label sets themselves."""
    child = cache.get(labels)
    if child is None:
        child = cache[labels] = metric.labels(*labels)
    return child


@dataclass(frozen=True, slots=True)
class _Timed:
    """Times a call (or, with ``attempts``, an attempt) into ``histogram``: exactly once, also
    when it raises or is cancelled. The labels of a request are worked out once per distinct
    method, URL (template) and endpoint, and remembered."""

    histogram: _Histogram
    attempts: bool
    routes: RouteLabels
    trace_ids: Callable[[], tuple[str, str] | None] | None = None
    _labels: dict[tuple[str, str, str | None], tuple[str, str, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``)."""
        trace_ids = self.trace_ids

        async def timed(request: Request) -> Response:
            clock = loop_clock()
            started = clock()
            status = "cancelled"  # unless set below: only a BaseException (cancellation) skips both
            try:
                response = await call_next(request)
                status = str(response.status)
                return response
            except Exception as error:
                status = library_error_name(error, "error")
                raise
            finally:
                key = (request.method, request.url, request.endpoint)
                try:
                    labels = self._labels[key]
                except KeyError:
                    labels = _client_labels(request, self.routes)
                    if len(self._labels) < _LABEL_CACHE_SIZE:
                        self._labels[key] = labels
                if self.attempts:
                    kind = request.attempt_kind
                    full: tuple[str, ...] = (*labels, status, kind if kind in ATTEMPT_KINDS else "other")
                else:
                    full = (*labels, status)
                histogram = self.histogram
                try:
                    values = histogram.children[full]
                except KeyError:
                    values = histogram.child(full)
                seconds = clock() - started
                bucket = bisect_left(histogram.bounds, seconds)
                values[bucket] += 1
                values[-1] += seconds
                if trace_ids is not None:  # the active span (the call's or the attempt's)
                    ids = trace_ids()
                    if ids is not None:
                        histogram.exemplify(full, bucket, ids, seconds)

        return timed

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)


@dataclass(frozen=True, slots=True)
class _BudgetHook:
    counter: Counter
    routes: RouteLabels
    #: The only events it takes, so strategies build no attempt events for it.
    event_types: ClassVar[frozenset[type]] = frozenset({BudgetExhausted})

    def __call__(self, event: Event) -> None:
        if isinstance(event, BudgetExhausted):
            kind = event.kind if event.kind in ATTEMPT_KINDS else "other"
            self.counter.labels(*_client_labels(event.request, self.routes), kind).inc()


@dataclass(frozen=True, slots=True)
class _BreakerHook:
    """Equal for one registry, so a breaker shared by two clients counts a change once."""

    state: Gauge
    transitions: Counter

    def __call__(self, event: CircuitStateChanged[Any]) -> None:
        self.state.labels(str(event.key)).set(CIRCUIT_STATE_VALUES[event.new])
        self.transitions.labels(str(event.key)).inc()


@dataclass(frozen=True, slots=True)
class _ServerTimed:
    """Times a server request into ``server_request_duration_seconds`` with the status that went
    on the wire (told by the server adapter's exchange, else what ``call_next`` gave), counts it
    in flight while the middlewares below run, and counts refusals in ``server_rejected``.

    A request's ``route`` label is worked out once per aiohttp route (kept per route object) and
    its ``client`` label once per distinct header value, each for up to ``_LABEL_CACHE_SIZE`` of
    them (past that, per request): both are bounded sets already, and this runs on every request.
    """

    metrics: _Metrics
    client_header_name: str
    trace_ids: Callable[[], tuple[str, str] | None] | None = None
    _rejected: dict[tuple[str, ...], Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _routes: dict[Any, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    _clients: dict[str | None, str] = field(default_factory=dict, init=False, repr=False, compare=False)

    def link(self, call_next: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        """The middleware with ``call_next`` bound (see ``compose``)."""
        routes, clients, header = self._routes, self._clients, self.client_header_name
        in_flight = self.metrics.in_flight.values  # the gauge's own numbers, counted without a call
        record = self._record
        trace_ids = self.trace_ids

        async def timed(request: Any) -> Any:
            exchange = CURRENT_EXCHANGE.get()  # exchange_of(request), without the call
            if exchange is not None and exchange.request is not request:
                exchange = None
            method = request.method
            if method not in HTTP_METHODS:
                method = "other"
            try:
                route = routes[request.match_info.route]
            except (AttributeError, KeyError, TypeError):  # first of its route; unmatched; not aiohttp's
                route = self._route(request)
            try:
                client = clients[request.headers.get(header)]
            except KeyError:
                client = self._client(request)
            key = (method, route)
            try:
                in_flight[key] += 1
            except KeyError:
                in_flight[key] = 1.0
            if exchange is not None and exchange.clock is not None:
                clock, started = exchange.clock, exchange.started  # read by the adapter on arrival
            else:
                clock = loop_clock()
                started = clock()
            status: int | None = None
            reason: str | None = None
            # The request's span is active now (ServerTracing is outside); when the status is
            # sent, later, it may no longer be.
            ids = None if trace_ids is None else trace_ids()
            try:
                response = await call_next(request)
                if exchange is None:
                    status = response.status
                return response
            except BaseException as error:
                reason = rejection(error)
                if exchange is None:
                    status = status_for(error)  # a guess: without the adapter nothing better is known
                raise
            finally:
                in_flight[key] -= 1
                done = partial(record, method, route, client, clock, started, reason, ids)
                if exchange is None:
                    done(status, False)
                elif exchange.callbacks is not None:  # exchange.when_sent(done), without the call
                    exchange.callbacks.append(done)
                else:
                    exchange.when_sent(done)

        return timed

    def __call__(self, request: Any, call_next: Callable[[Any], Awaitable[Any]], /) -> Awaitable[Any]:
        return self.link(call_next)(request)

    def _route(self, request: Any) -> str:
        route = server_route(request)
        if route is None:
            return "unmatched"  # the 404 and 405 routes are made afresh per request: not kept
        if len(self._routes) < _LABEL_CACHE_SIZE:
            with contextlib.suppress(AttributeError, TypeError):  # not an aiohttp request: nothing to key it by
                self._routes[request.match_info.route] = route
        return route

    def _client(self, request: Any) -> str:
        client = service_name(request, self.client_header_name)
        if len(self._clients) < _LABEL_CACHE_SIZE:
            self._clients[request.headers.get(self.client_header_name)] = client
        return client

    def _record(
        self,
        method: str,
        route: str,
        client: str,
        clock: Callable[[], float],
        started: float,
        reason: str | None,
        ids: tuple[str, str] | None,
        status: int | None,
        aborted: bool,
    ) -> None:
        if reason is not None and not aborted:  # a refusal answers; an error cutting a stream refused nothing
            _child(self.metrics.rejected, self._rejected, (method, route, client, reason)).inc()
        label = str(status) if status is not None else "aborted" if aborted else "cancelled"
        seconds = clock() - started
        histogram, labels = self.metrics.server, (method, route, label, client)
        try:
            values = histogram.children[labels]
        except KeyError:
            values = histogram.child(labels)
        bucket = bisect_left(histogram.bounds, seconds)
        values[bucket] += 1
        values[-1] += seconds
        if ids is not None:
            histogram.exemplify(labels, bucket, ids, seconds)


@dataclass(frozen=True, slots=True)
class PrometheusMetricsProvider:
    """The ``MetricsProvider`` for prometheus-client.

    Options:
        registry: where the metrics are registered; default ``None``: prometheus-client's
            default ``REGISTRY``, looked up on first use.
        buckets: histogram bounds in seconds, increasing; providers sharing a registry must
            share buckets; default ``DEFAULT_BUCKETS`` (5 ms to 20 s).
        client_header_name: the header naming the calling service, for the server's ``client``
            label; default ``X-Service-Name``.
        max_routes: distinct ``route`` labels each client middleware and hook keeps, a count;
            later routes read ``other`` (absolute URLs and f-string URLs would otherwise make a
            label set per id); default ``MAX_ROUTES``, 200.
        trace_ids: ``() -> (trace_id, span_id) | None``, the active span's ids
            (``middlewares.tracing.current_trace_ids``): each histogram bucket then keeps its
            latest exemplar (see the module docstring); default ``None``: no exemplars, and
            nothing looked up per observation.

    The metrics are created on first use of any method, once per registry: every provider on
    one registry records into the same metric objects. Without prometheus-client installed,
    that first use raises ``ImportError`` with the install hint. The provider holds no state;
    the middlewares and hooks it hands out each keep their own set of routes seen.
    """

    registry: CollectorRegistry | None = None
    buckets: Sequence[float] = DEFAULT_BUCKETS
    client_header_name: str = SERVICE_NAME_HEADER
    max_routes: int = MAX_ROUTES
    trace_ids: Callable[[], tuple[str, str] | None] | None = None

    def __post_init__(self) -> None:
        RouteLabels(self.max_routes)  # checks it
        check_header_name(self.client_header_name, "client_header_name")
        buckets = tuple(self.buckets)
        ok = bool(buckets) and all(isinstance(b, int | float) and 0 < b < math.inf for b in buckets)
        if not ok or list(buckets) != sorted(set(buckets)):
            raise ValueError(f"buckets must be increasing finite seconds > 0, got {self.buckets!r}")
        object.__setattr__(self, "buckets", tuple(float(b) for b in buckets))

    def _metrics(self) -> _Metrics:
        return _Metrics.on(self.registry, tuple(self.buckets))

    def client_call_middleware(self) -> Middleware[Request, Response]:
        return _Timed(self._metrics().call, False, RouteLabels(self.max_routes), self.trace_ids)

    def client_attempt_middleware(self) -> Middleware[Request, Response]:
        return _Timed(self._metrics().attempt, True, RouteLabels(self.max_routes), self.trace_ids)

    def client_event_hook(self) -> EventHook:
        return _BudgetHook(self._metrics().budget, RouteLabels(self.max_routes))

    def circuit_breaker_hook(self) -> Callable[[CircuitStateChanged[Any]], None]:
        metrics = self._metrics()
        return _BreakerHook(metrics.state, metrics.transitions)

    def server_middleware(self) -> Middleware[Any, Any]:
        return _ServerTimed(self._metrics(), self.client_header_name, self.trace_ids)


#: Metrics on prometheus-client's default registry, created when first used.
PROMETHEUS_METRICS_PROVIDER: Final = PrometheusMetricsProvider()
