"""Tracing with OpenTelemetry: a span per call, a CLIENT span per attempt, a SERVER span per request.

    client: ClientTracing -> [call middlewares: ClientLog] -> [metrics: call] -> deadline -> priority
              -> strategy -> ClientTracing.attempts() -> [metrics: attempt] -> breaker -> wire -> transport
    server: ServerTracing -> [outer middlewares: ServerLog] -> [metrics] -> deadline -> priority -> ... -> handler

gRPC's model (a call span with one child span per attempt): the logical call is one INTERNAL
span; each physical attempt is a CLIENT span, its child, whatever the strategy. Retries are
consecutive children; hedges are overlapping siblings (each hedge runs in a task that copies the
strategy's context, where the call span is the current one, never the previous attempt's). A
hedged call whose second attempt won, with the server's span under each attempt that reached it::

    GET users/{id}              INTERNAL  the call          http.response.status_code 200
    ├── GET users/{id}          CLIENT    attempt 1 first   aio_pipeline.outcome cancelled (lost)
    │   └── GET /users/{id}     SERVER    callee
    └── GET users/{id}          CLIENT    attempt 2 hedge   http.response.status_code 200
        └── GET /users/{id}     SERVER    callee

Attributes, after the HTTP semantic conventions: ``http.request.method`` (``_OTHER`` and
``http.request.method_original`` for a non-standard method), ``server.address``,
``server.port``, ``url.scheme``, ``url.template`` (the request's URL template, from a bounded
set as metrics have it: past ``max_routes`` templates the span is named by its method alone),
``http.response.status_code``, ``error.type`` (the status for >= 400, else the library error's
class name, or the exception's qualified name) and, on attempts after the first,
``http.request.resend_count``. Ours, on attempts: ``aio_pipeline.attempt`` (1, 2, ...),
``aio_pipeline.attempt.kind`` (first, retry, hedge), ``aio_pipeline.deadline.remaining`` (the
seconds left of the attempt's deadline when it started) and ``aio_pipeline.priority``; on the call,
when it answered, the attempt and priority of the attempt that answered. An answer >= 400 or an
exception sets the status to ERROR (the description is the error's type, never its message,
which may quote a URL).

Cancelled is not failed. A hedge that lost, or a call its caller gave up on, ends with the
attribute ``aio_pipeline.outcome`` = ``cancelled`` and its status left UNSET: OpenTelemetry
allows a status description only with ERROR (the SDK drops it otherwise), so the word goes in an
attribute. An attempt cut by the call's deadline is a failure: ``error.type``
``DeadlineExceededError``, status ERROR.

Decisions become events on the call span, from ``client_event_hook()`` (the strategies'
events) and ``circuit_breaker_hook()``, named as the log events are:
``aio_pipeline.client.retry_scheduled`` (``next_attempt``, ``delay`` seconds),
``aio_pipeline.client.hedge_started`` (``attempt``, ``after`` seconds),
``aio_pipeline.client.retry_budget_exhausted`` (``attempt``, ``kind``),
``aio_pipeline.client.retry_after`` (``retry_after`` seconds, ``honoured``, then ``delay`` or
``limit``), ``aio_pipeline.circuit_breaker.open`` (an attempt refused with ``CircuitOpenError``,
``retry_after`` seconds; the attempt span fails with that error type) and
``aio_pipeline.circuit_breaker.state_changed`` (``endpoint``, ``old``, ``new``, ``reason``).

Propagation: each attempt injects its own span's context into its request's headers through the
configured global text-map propagator (``opentelemetry.propagate.inject``: W3C ``traceparent``
and ``tracestate``, and ``baggage``, unless configured otherwise), so the callee's span is the
child of the attempt that reached it. Without an SDK the API's spans are non-recording but carry
the incoming context on, so a service without a tracer provider still passes the trace through.

Server. ``ServerTracing`` extracts the caller's context with the same propagator and opens a
SERVER span (``http.request.method``, ``url.path``, ``url.scheme``, ``server.address`` and
``server.port`` from ``Host``, ``http.route`` from the matched resource, named
``{method} {route}``; ours: ``aio_pipeline.client`` from
``X-Service-Name``, ``aio_pipeline.attempt``, ``aio_pipeline.priority`` and
``aio_pipeline.deadline.remaining`` as the caller sent them). A request refused before its
handler ran gets the event ``aio_pipeline.server.rejected`` and the attribute
``aio_pipeline.rejected`` (``deadline``, ``overloaded``). The status is what went on the wire,
as the aiohttp adapter's exchange tells it (``aio_pipeline.observe.Exchange``): the span ends when the
status is final, ERROR for a 5xx or a response cut mid-stream (``error.type`` ``aborted``).
Without an exchange (a middleware driven directly) it records what ``call_next`` gave.

When ``opentelemetry-instrumentation-aiohttp-server`` already traces the app, there is one span,
not two: ``ServerTracing`` adds its attributes and events to the instrumentation's span instead
of opening its own. It decides so when the current span, as it starts, is a recording SERVER
span whose parent is exactly the context this request carries (or that has no parent when the
request carries none): a span opened for this very request by a middleware outside ours, which
is what that instrumentation does. A SERVER span that merely leaked into the request's task
(the server started inside a span) has another parent and is not taken. That span's status and
end are its owner's.

Logs and metrics point at traces through ``current_trace_ids``: the active span's trace and span
ids, as lowercase hex, when the span is sampled. ``ClientLog``, ``ServerLog`` and
``PrometheusMetricsProvider`` take it as their ``trace_ids`` option (``with_trace_ids`` sets it on
ours), so that they need not import OpenTelemetry: log events carry ``trace_id`` and ``span_id``,
and histogram buckets an exemplar (OpenMetrics exposition). ``setup(tracing=True)`` and
``aiohttp_middleware_factory(tracing=True)`` wire all of it (``client_tracing_setup``).

opentelemetry-api is imported when a middleware is constructed, never at import time; without it
that raises ``ImportError`` with the install hint.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar

from aio_pipeline.chain import Handler, Middleware
from aio_pipeline.circuit import CircuitStateChanged
from aio_pipeline.errors import CircuitOpenError, InvalidRequestError
from aio_pipeline.http import Request, Response, check_header_name
from aio_pipeline.observe import (
    HTTP_METHODS,
    MAX_ROUTES,
    RouteLabels,
    exchange_of,
    library_error_name,
    rejection,
    server_route,
    service_name,
    status_for,
)
from aio_pipeline.policy import (
    BudgetExhausted,
    Event,
    EventHook,
    HedgeStarted,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryScheduled,
)
from aio_pipeline.propagation import (
    ATTEMPT_HEADER,
    LOW_TIMEOUT_THRESHOLD,
    PRIORITY_HEADER,
    SERVICE_NAME_HEADER,
    TIMEOUT_HEADER,
    Priority,
    loop_clock,
    parse_timeout,
)

if TYPE_CHECKING:
    from opentelemetry.context import Context as OtelContext
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = [
    "INSTALL_HINT",
    "ClientTracing",
    "ClientTracingSetup",
    "ServerTracing",
    "TraceIds",
    "client_tracing_setup",
    "current_trace_ids",
    "with_trace_ids",
]

INSTALL_HINT: Final = "tracing needs opentelemetry-api: pip install 'aio-pipeline[otel]'"
#: The instrumentation scope of every span made here.
SCOPE: Final = "aio_pipeline"

#: ``() -> (trace_id, span_id)`` of the active span, or ``None``: what logs and metrics are given.
TraceIds = Callable[[], tuple[str, str] | None]

Attributes = dict[str, str | int | float | bool]
T = TypeVar("T")

#: The call span of the call being made here, set by ``ClientTracing`` around the rest of the call:
#: where the strategies' and the breaker's events go (a contextvar, so the hedges' tasks see it).
_CALL_SPAN: Final[contextvars.ContextVar[Span | None]] = contextvars.ContextVar("aio_pipeline_call_span", default=None)
#: Distinct ``(method, url, endpoint)`` whose attributes one middleware remembers (as metrics do).
_CACHE_SIZE: Final = 1024


def _opentelemetry() -> Any:
    """``opentelemetry.trace``, imported now; ``ImportError`` with the install hint without it."""
    try:
        import opentelemetry.context
        import opentelemetry.propagate
        import opentelemetry.trace
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return opentelemetry


def current_trace_ids() -> tuple[str, str] | None:
    """The active span's ``(trace_id, span_id)`` as 32 and 16 lowercase hex digits (as W3C
    ``traceparent`` writes them), or ``None`` when no span is active or it is not sampled, so that
    an id in a log line or an exemplar always leads to a trace that was recorded.

    The ``trace_ids`` option of ``ClientLog``, ``ServerLog`` and ``PrometheusMetricsProvider``.
    Raises ``ImportError`` with the install hint without opentelemetry-api (``with_trace_ids``
    checks it up front).
    """
    try:
        import opentelemetry.trace  # a look-up in sys.modules once imported, no profiled call
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    context = opentelemetry.trace.get_current_span().get_span_context()
    if not context.trace_flags & 1:  # sampled; an invalid context's flags are 0
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def _tracer(provider: TracerProvider | None) -> Tracer:
    otel = _opentelemetry()
    tracer: Tracer = otel.trace.get_tracer(SCOPE, tracer_provider=provider)
    return tracer


def _method(method: str, attributes: Attributes) -> str:
    """``http.request.method`` (and the original of a non-standard one); the span name's verb."""
    if method in HTTP_METHODS:
        attributes["http.request.method"] = method
        return method
    attributes["http.request.method"] = "_OTHER"
    attributes["http.request.method_original"] = method
    return "HTTP"


class _ClientAttributes:
    """The span name and attributes of a request's method, URL and endpoint: worked out once per
    distinct triple (up to ``_CACHE_SIZE`` of them). The dict is shared: given to ``start_span``
    (the SDK copies what it keeps), never changed."""

    __slots__ = ("_known", "_routes")

    def __init__(self, max_routes: int) -> None:
        self._routes = RouteLabels(max_routes, overflow="_OTHER")
        self._known: dict[tuple[str, str, str | None], tuple[str, Attributes]] = {}

    def __call__(self, request: Request) -> tuple[str, Attributes]:
        key = (request.method, request.url, request.endpoint)
        try:
            name, attributes = self._known[key]
        except KeyError:
            name, attributes = self._work_out(request)
            if len(self._known) < _CACHE_SIZE:
                self._known[key] = name, attributes
        return name, attributes

    def _work_out(self, request: Request) -> tuple[str, Attributes]:
        attributes: Attributes = {}
        verb = _method(request.method, attributes)
        template = self._routes(request.route)
        name = verb
        if template != "_OTHER":  # past max_routes: no unbounded span names
            attributes["url.template"] = template
            name = f"{verb} {template}"
        try:
            scheme, _, address = request.authority.partition("://")  # never userinfo
        except InvalidRequestError:
            return name, attributes
        host, _, port = address.rpartition(":")
        if port.isdigit():
            attributes.update({"server.address": host.strip("[]"), "server.port": int(port), "url.scheme": scheme})
        return name, attributes


def _attempt_attributes(request: Request) -> Attributes:
    """Ours, and the resend count, for a recording attempt span."""
    attempt, deadline, priority = request.attempt, request.deadline, request.priority
    attributes: Attributes = {"aio_pipeline.attempt": attempt, "aio_pipeline.attempt.kind": request.attempt_kind}
    if attempt > 1:
        attributes["http.request.resend_count"] = attempt - 1
    if deadline is not None:  # seconds left as the attempt starts
        attributes["aio_pipeline.deadline.remaining"] = round(deadline.deadline_at - loop_clock()(), 6)
    if priority is not None:
        attributes["aio_pipeline.priority"] = priority.value
    return attributes


def _error_type(error: BaseException) -> str:
    """The library error's class name (a subclass counts as its base), else the exception's
    qualified name, as the semantic conventions ask."""
    cls = type(error)
    return library_error_name(error, f"{cls.__module__}.{cls.__qualname__}")


def _failed(otel: Any, span: Span, error_type: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(otel.trace.Status(otel.trace.StatusCode.ERROR, error_type))


def _answered(otel: Any, span: Span, response: Response) -> None:
    status = response.status
    span.set_attribute("http.response.status_code", status)
    if status >= 400:  # a client span fails on any error status (semantic conventions)
        _failed(otel, span, str(status))


@dataclass(frozen=True, slots=True)
class ClientTracing:
    """The call span: a client middleware that traces each call; its ``attempts()`` traces each attempt.

    Put it outermost (before ``ClientLog``, so that the call's log event carries the call span's
    ids) and ``attempts()`` right inside the strategy (where metrics' attempt middleware goes,
    before the breaker and ``SystemHeaders``)::

        tracing = ClientTracing()
        Pipeline(transport, [
            tracing, ClientLog(trace_ids=current_trace_ids), ClientDeadline(), ClientPriority(),
            PerCallStrategy(event_hooks=[tracing.client_event_hook()]),
            tracing.attempts(), CircuitBreakerMiddleware(breaker), SystemHeaders(),
        ])
        breaker.subscribe(tracing.circuit_breaker_hook())

    The same list works in ``aiohttp_client_middlewares(...)`` and ``HttpxPipelineTransport(...)``;
    ``setup(tracing=True)`` places all of it (``client_tracing_setup``).

    Options:
        tracer_provider: where the tracer comes from; default ``None``: OpenTelemetry's global
            one (``opentelemetry.trace.get_tracer_provider()``, a proxy until an SDK sets one).
        max_routes: distinct ``url.template`` values each middleware keeps, a count; past that,
            spans are named by the method alone and carry no ``url.template``; default
            ``MAX_ROUTES``, 200.

    Constructing it without opentelemetry-api raises ``ImportError`` with the install hint; the
    tracer is looked up when a middleware is composed into a pipeline.
    """

    tracer_provider: TracerProvider | None = None
    max_routes: int = MAX_ROUTES

    def __post_init__(self) -> None:
        RouteLabels(self.max_routes)  # checks it
        _opentelemetry()

    def attempts(self) -> Middleware[Request, Response]:
        """The per-attempt middleware: a CLIENT span per attempt, its context injected."""
        return _AttemptTracing(self.tracer_provider, self.max_routes)

    def client_event_hook(self) -> EventHook:
        """The strategies' decisions, as events on the call span (see the module docstring)."""
        return _CallEvents()

    def circuit_breaker_hook(self) -> Callable[[CircuitStateChanged[Any]], None]:
        """The breaker's state changes, as events on the span of the call that caused them."""
        return _BreakerEvents()

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``)."""
        otel = _opentelemetry()
        tracer = _tracer(self.tracer_provider)
        attributes_of = _ClientAttributes(self.max_routes)
        attach, detach, in_context = otel.context.attach, otel.context.detach, otel.trace.set_span_in_context
        internal = otel.trace.SpanKind.INTERNAL
        call_span = _CALL_SPAN

        async def traced_call(request: Request) -> Response:
            name, attributes = attributes_of(request)
            span = tracer.start_span(name, kind=internal, attributes=attributes)
            token = attach(in_context(span))
            if not span.is_recording():  # no SDK, or sampled out: the context is carried on, no more
                try:
                    return await call_next(request)
                finally:
                    detach(token)
            own = call_span.set(span)
            try:
                response = await call_next(request)
                sent = response.request  # the attempt that answered, when a transport made it
                if sent is not None:
                    span.set_attribute("aio_pipeline.attempt", sent.attempt)
                    if sent.priority is not None:
                        span.set_attribute("aio_pipeline.priority", sent.priority.value)
                _answered(otel, span, response)
                return response
            except asyncio.CancelledError:  # the caller gave up: not a failure of the call
                span.set_attribute("aio_pipeline.outcome", "cancelled")
                raise
            except Exception as error:
                _failed(otel, span, _error_type(error))
                raise
            finally:
                call_span.reset(own)
                detach(token)
                span.end()

        return traced_call

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)


@dataclass(frozen=True, slots=True)
class _AttemptTracing:
    """One CLIENT span per attempt, child of the current span (the call's), its context injected
    into the attempt's headers; see ``ClientTracing``."""

    tracer_provider: TracerProvider | None
    max_routes: int

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``)."""
        otel = _opentelemetry()
        tracer = _tracer(self.tracer_provider)
        attributes_of = _ClientAttributes(self.max_routes)
        attach, detach, in_context = otel.context.attach, otel.context.detach, otel.trace.set_span_in_context
        inject = otel.propagate.inject
        client = otel.trace.SpanKind.CLIENT
        call_span = _CALL_SPAN

        async def traced_attempt(request: Request) -> Response:
            name, attributes = attributes_of(request)  # the ones a sampler may look at
            attempt, deadline = request.attempt, request.deadline
            # The parent is the current span: the call's, also in a hedge's task (it copied the
            # strategy's context), since an attempt's own context is attached only below.
            span = tracer.start_span(name, kind=client, attributes=attributes)
            context = in_context(span)
            token = attach(context)  # so that a transport's own instrumentation nests under it
            try:
                carrier: dict[str, str] = {}
                inject(carrier, context=context)  # the configured propagator: traceparent, ...
                if carrier:
                    request = request.update_headers(carrier)
                if not span.is_recording():  # no SDK, or sampled out: the context went out, no more
                    return await call_next(request)
                span.set_attributes(_attempt_attributes(request))
                response = await call_next(request)
                _answered(otel, span, response)
                return response
            except asyncio.CancelledError:
                if deadline is not None and deadline.timeout < LOW_TIMEOUT_THRESHOLD:
                    _failed(otel, span, "DeadlineExceededError")  # cut by the call's deadline
                else:  # a hedge that lost, or a caller that gave up: not a failure
                    span.set_attribute("aio_pipeline.outcome", "cancelled")
                raise
            except Exception as error:
                if isinstance(error, CircuitOpenError):
                    parent = call_span.get()
                    if parent is not None:
                        parent.add_event(
                            "aio_pipeline.circuit_breaker.open", {"attempt": attempt, "retry_after": error.retry_after}
                        )
                _failed(otel, span, _error_type(error))
                raise
            finally:
                detach(token)
                span.end()

        return traced_attempt

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)


#: The strategy events that are decisions: the only ones the call span's hook takes, so that a
#: strategy builds no per-attempt events for it.
_DECISIONS: Final = frozenset({RetryScheduled, HedgeStarted, BudgetExhausted, RetryAfterHonoured, RetryAfterGaveUp})


@dataclass(frozen=True, slots=True)
class _CallEvents:
    """The strategies' decisions as events on the current call's span (none outside a call)."""

    event_types: ClassVar[frozenset[type]] = _DECISIONS

    def __call__(self, event: Event) -> None:
        span = _CALL_SPAN.get()
        if span is None:
            return
        if isinstance(event, RetryScheduled):
            span.add_event(
                "aio_pipeline.client.retry_scheduled", {"next_attempt": event.next_attempt, "delay": event.delay}
            )
        elif isinstance(event, HedgeStarted):
            span.add_event(
                "aio_pipeline.client.hedge_started", {"attempt": event.request.attempt, "after": event.after}
            )
        elif isinstance(event, BudgetExhausted):
            span.add_event("aio_pipeline.client.retry_budget_exhausted", {"attempt": event.attempt, "kind": event.kind})
        elif isinstance(event, RetryAfterHonoured):
            span.add_event(
                "aio_pipeline.client.retry_after",
                {"retry_after": event.retry_after, "honoured": True, "delay": event.delay},
            )
        elif isinstance(event, RetryAfterGaveUp):
            span.add_event(
                "aio_pipeline.client.retry_after",
                {"retry_after": event.retry_after, "honoured": False, "limit": event.limit},
            )


@dataclass(frozen=True, slots=True)
class _BreakerEvents:
    """A circuit's state change as an event on the span of the call whose attempt caused it."""

    def __call__(self, event: CircuitStateChanged[Any]) -> None:
        span = _CALL_SPAN.get()
        if span is not None:
            span.add_event(
                "aio_pipeline.circuit_breaker.state_changed",
                {"endpoint": str(event.key), "old": event.old.value, "new": event.new.value, "reason": event.reason},
            )


# --- the server ---------------------------------------------------------------------------------


def _server_name(request: Any) -> tuple[str, Attributes]:
    """The SERVER span's name and the attributes a sampler may look at, read from the request by
    duck typing (no aiohttp): method and route."""
    attributes: Attributes = {}
    verb = _method(request.method, attributes)
    route = server_route(request)
    if route is None:
        return verb, attributes
    attributes["http.route"] = route
    return f"{verb} {route}", attributes


def _server_attributes(request: Any, client_header_name: str) -> Attributes:
    """The rest of a recording SERVER span's attributes (a span nobody records is spared them)."""
    attributes: Attributes = {}
    for attribute, value in (
        ("url.path", getattr(request, "path", None)),
        ("url.scheme", getattr(request, "scheme", None)),
    ):
        if isinstance(value, str):
            attributes[attribute] = value
    host = getattr(request, "host", None)  # the Host header as the client sent it
    if isinstance(host, str) and host:
        address, _, port = host.rpartition(":")
        if address and port.isdigit() and len(port) <= 5:
            attributes["server.address"], attributes["server.port"] = address.strip("[]"), int(port)
        else:
            attributes["server.address"] = host.strip("[]")
    headers = request.headers
    attributes["aio_pipeline.client"] = service_name(request, client_header_name)
    seconds = parse_timeout(headers.get(TIMEOUT_HEADER))
    if seconds is not None:
        attributes["aio_pipeline.deadline.remaining"] = seconds
    priority = Priority.parse(headers.get(PRIORITY_HEADER))
    if priority is not None:
        attributes["aio_pipeline.priority"] = priority.value
    attempt = headers.get(ATTEMPT_HEADER)
    if attempt is not None and attempt.isdigit() and len(attempt) <= 6:  # a number, not any text
        attributes["aio_pipeline.attempt"] = int(attempt)
    return attributes


def _serves_this_request(span: Span, remote: Any, server_kind: Any) -> bool:
    """Whether ``span`` (the current one) is a SERVER span opened for this very request by a
    middleware outside ours (opentelemetry-instrumentation-aiohttp-server): recording, of kind
    SERVER, and a child of exactly the context the request carries (a root when it carries none).
    The SDK's spans expose ``kind`` and ``parent``; a span without them is never taken."""
    if not span.is_recording() or getattr(span, "kind", None) is not server_kind:
        return False
    parent = getattr(span, "parent", None)
    return bool(parent == remote) if remote.is_valid else parent is None


def _mark_rejected(span: Span, reason: str) -> None:
    span.set_attribute("aio_pipeline.rejected", reason)
    span.add_event("aio_pipeline.server.rejected", {"reason": reason})


def _server_ended(
    otel: Any, span: Span, error: BaseException | None, reason: str | None, status: int | None, aborted: bool
) -> None:
    """Ends our SERVER span with what went on the wire (an exchange callback; see ``Exchange``)."""
    if reason is not None and not aborted:  # a refusal answers; an error cutting a stream refused nothing
        _mark_rejected(span, reason)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:  # a server span fails on 5xx only (semantic conventions)
            _failed(otel, span, str(status))
            if isinstance(error, Exception) and reason is None and not getattr(error, "__http_exception__", False):
                span.record_exception(error)  # the handler's own failure: its type and stack
    elif aborted:  # the response had started, then an error cut it
        _failed(otel, span, "aborted")
    else:  # nothing was sent: cancelled
        span.set_attribute("aio_pipeline.outcome", "cancelled")
    span.end()


@dataclass(frozen=True, slots=True)
class ServerTracing:
    """A SERVER span per request, the caller's context extracted; see the module docstring.

    Put it outermost, so that refused requests have a span and ``ServerLog`` inside it can log
    the span's ids: ``aiohttp_middleware_factory(tracing=True)`` does so. The span is current
    while the middlewares inside and the handler run, so the handler's own calls (through
    ``ClientTracing``) are its children.

    Options:
        tracer_provider: where the tracer comes from; default ``None``: OpenTelemetry's global
            one.
        client_header_name: the header naming the calling service, for ``aio_pipeline.client``;
            default ``X-Service-Name``.

    Constructing it without opentelemetry-api raises ``ImportError`` with the install hint.
    """

    tracer_provider: TracerProvider | None = None
    client_header_name: str = SERVICE_NAME_HEADER

    def __post_init__(self) -> None:
        check_header_name(self.client_header_name, "client_header_name")
        _opentelemetry()

    def link(self, call_next: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        """The middleware with ``call_next`` bound (see ``compose``)."""
        otel = _opentelemetry()
        tracer = _tracer(self.tracer_provider)
        extract, current_span = otel.propagate.extract, otel.trace.get_current_span
        attach, detach, in_context = otel.context.attach, otel.context.detach, otel.trace.set_span_in_context
        server_kind = otel.trace.SpanKind.SERVER
        header = self.client_header_name

        async def traced(request: Any) -> Any:
            carried: OtelContext = extract(request.headers)  # from an empty context: a root without one
            current = current_span()
            name, attributes = _server_name(request)
            adopted = _serves_this_request(current, current_span(carried).get_span_context(), server_kind)
            if adopted:  # the instrumentation's span: ours are added to it, its end is its own
                span = current
                span.set_attributes(attributes)
            else:
                span = tracer.start_span(name, context=carried, kind=server_kind, attributes=attributes)
            token = None if adopted else attach(in_context(span, carried))
            if not span.is_recording():  # no SDK, or sampled out: the context is carried on, no more
                try:
                    return await call_next(request)
                finally:
                    if token is not None:
                        detach(token)
            span.set_attributes(_server_attributes(request, header))
            exchange = exchange_of(request)
            status: int | None = None
            error: BaseException | None = None
            reason: str | None = None
            try:
                response = await call_next(request)
                status = response.status
                return response
            except BaseException as raised:
                error, reason = raised, rejection(raised)
                status = status_for(raised)  # a guess, used only without the adapter's exchange
                if adopted and reason is not None:
                    _mark_rejected(span, reason)
                raise
            finally:
                if token is not None:
                    detach(token)
                if not adopted:
                    end = partial(_server_ended, otel, span, error, reason)
                    if exchange is None:
                        end(status, False)
                    else:
                        exchange.when_sent(end)

        return traced

    def __call__(self, request: Any, call_next: Callable[[Any], Awaitable[Any]], /) -> Awaitable[Any]:
        return self.link(call_next)(request)


# --- wiring: what setup() and aiohttp_middleware_factory() use -----------------------------------

#: Our observers that take a ``trace_ids`` option, by exact type (a user's subclass is used as given).
_TRACE_AWARE: Final = frozenset(
    {
        ("aio_pipeline.middlewares.log", "ClientLog"),
        ("aio_pipeline.middlewares.log", "ServerLog"),
        ("aio_pipeline.middlewares.prometheus", "PrometheusMetricsProvider"),
    }
)


def with_trace_ids(thing: T, trace_ids: TraceIds = current_trace_ids) -> T:
    """``thing`` with ``trace_ids`` set when it is our ``ClientLog``, ``ServerLog`` or
    ``PrometheusMetricsProvider`` (exactly: a copy of a frozen dataclass is as good) without
    one yet; anything else is returned as given. Raises ``ImportError`` with the install hint
    without opentelemetry-api."""
    kind = type(thing)
    if (kind.__module__, kind.__qualname__) not in _TRACE_AWARE or getattr(thing, "trace_ids", None) is not None:
        return thing
    _opentelemetry()
    changed: T = dataclasses.replace(thing, trace_ids=trace_ids)  # type: ignore[type-var]
    return changed


@dataclass(frozen=True, slots=True)
class ClientTracingSetup:
    """What ``setup(tracing=True)`` places (see ``client_tracing_setup``):

    ``call_middleware`` outermost but for the synthetic responses (before ``call_middlewares``);
    ``attempt_middleware`` right after the strategy (before metrics' attempt middleware);
    ``observer`` beside the metrics provider, for its ``client_event_hook()`` and
    ``circuit_breaker_hook()``; ``metrics_provider`` and ``call_middlewares`` in place of the
    ones given (ours with ``trace_ids`` set, so logs and exemplars carry the ids).
    """

    call_middleware: ClientTracing
    attempt_middleware: Middleware[Request, Response]
    observer: ClientTracing
    metrics_provider: Any
    call_middlewares: tuple[Middleware[Request, Response], ...]


def client_tracing_setup(
    *,
    tracer_provider: TracerProvider | None = None,
    metrics_provider: Any = None,
    call_middlewares: Iterable[Middleware[Request, Response]] = (),
) -> ClientTracingSetup:
    """The tracing pieces of a ``setup()`` client, with ``tracer_provider`` (default: the global
    one). Raises ``ImportError`` with the install hint without opentelemetry-api, at once."""
    _opentelemetry()
    tracing = ClientTracing(tracer_provider=tracer_provider)
    return ClientTracingSetup(
        call_middleware=tracing,
        attempt_middleware=tracing.attempts(),
        observer=tracing,
        metrics_provider=None if metrics_provider is None else with_trace_ids(metrics_provider),
        call_middlewares=tuple(with_trace_ids(m) for m in call_middlewares),
    )
