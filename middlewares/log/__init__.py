"""Structured logs through structlog: ``ClientLog`` (per call) and ``ServerLog`` (per request).

The library never configures structlog; it only gets loggers, so your processors and renderer
apply. The event names are stable:

    aio_pipeline.client.call                    info    one per call; warning when it raised
    aio_pipeline.client.attempt                 debug   one per attempt (first, retry, hedge)
    aio_pipeline.client.retry_scheduled         info    a retry, with its delay
    aio_pipeline.client.hedge_started           info    a hedge, ``after`` seconds
    aio_pipeline.client.retry_budget_exhausted  warning the budget refused a retry or hedge
    aio_pipeline.client.retry_after             info    a server's Retry-After, honoured or not
    aio_pipeline.circuit_breaker.state_changed  info    warning when a circuit opens
    aio_pipeline.server.request                 info    one per request; warning when refused,
                                                        failed with a 5xx or cut mid-response

Fields: ``method``, ``endpoint`` (``scheme://host:port``), ``route`` (the URL template; on the
server the matched resource, ``unmatched`` without one, and ``path``), ``status`` and
``error`` (the exception's class name), ``duration`` and ``deadline_remaining`` (seconds),
``priority``, ``attempt`` and ``attempt_kind``, ``client`` (from ``X-Service-Name``), and
``trace_id`` and ``span_id`` when the ``trace_ids`` option is set and a sampled span is active
(``middlewares.tracing.current_trace_ids``; ``setup(tracing=True)`` and
``aiohttp_middleware_factory(tracing=True)`` set it on ours). Never
logged: bodies, query strings, userinfo, exception messages (they may quote a URL). Headers
only with ``log_headers=True``, and then the values of Authorization, Cookie, Set-Cookie,
Proxy-Authorization and of every name in ``deny_headers`` read ``[redacted]``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

from aio_pipeline.chain import Handler
from aio_pipeline.circuit import CircuitStateChanged
from aio_pipeline.errors import PipelineError
from aio_pipeline.http import Request, Response
from aio_pipeline.middlewares.log._events import (
    BreakerEvents,
    ClientEvents,
    call_fields,
    error_name,
    log_event,
    seconds,
)
from aio_pipeline.observe import exchange_of, rejection, server_route, service_name, status_for
from aio_pipeline.policy import (
    EventHook,
)
from aio_pipeline.propagation import (
    PRIORITY_HEADER,
    SERVICE_NAME_HEADER,
    TIMEOUT_HEADER,
    Priority,
    earliest,
    get_context,
    loop_clock,
    parse_timeout,
)

__all__ = ["DENIED_HEADERS", "ClientLog", "ServerLog"]

#: Headers whose values are never logged, whatever the options.
DENIED_HEADERS: Final = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
INSTALL_HINT: Final = "logging needs structlog: pip install 'aio-pipeline[structlog]'"


def _get_logger(name: str) -> Any:
    try:
        import structlog
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return structlog.get_logger(name)


#: ``() -> (trace_id, span_id) | None``: the active span's ids, such as
#: ``middlewares.tracing.current_trace_ids``. A function given, not an import: this module knows
#: nothing of OpenTelemetry, and without one (the default) nothing is looked up.
TraceIds = Callable[[], tuple[str, str] | None]


def _add_trace_ids(fields: dict[str, Any], trace_ids: TraceIds) -> None:
    ids = trace_ids()
    if ids is not None:
        fields["trace_id"], fields["span_id"] = ids


def _headers(items: Iterable[tuple[str, str]], deny: frozenset[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        shown = "[redacted]" if name.lower() in deny else value
        headers[name] = f"{headers[name]}, {shown}" if name in headers else shown
    return headers


@dataclass(frozen=True, slots=True)
class _Options:
    """What ``ClientLog`` and ``ServerLog`` share: a logger and the header rules."""

    logger_name: str = "aio_pipeline"
    log_headers: bool = False
    deny_headers: Collection[str] = ()
    _logger: Any = field(init=False, repr=False, compare=False)
    _deny: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_logger", _get_logger(self.logger_name))
        object.__setattr__(self, "_deny", DENIED_HEADERS | {name.lower() for name in self.deny_headers})


@dataclass(frozen=True, slots=True)
class ClientLog(_Options):
    """Logs calls (``aio_pipeline.client.call``); put it outermost, as a call middleware.

    By default a call that went well costs no log line: one that returned a status below 400
    in its first attempt is not logged, unless ``every_call``. Every other call is: at warning
    when it raised or answered 5xx, at info otherwise (a 4xx, or an answer that took more than
    one attempt), and a cancelled call at info. ``attempts`` is the number of the attempt whose
    outcome the call returned, and ``deadline_remaining`` and ``priority`` are those it was
    sent with (from ``Response.request``, or the error's ``request``).

    Its ``client_event_hook()`` logs the strategies' decisions (retries, hedges, budget and
    Retry-After) and, with ``log_attempts``, each attempt at debug; its ``circuit_breaker_hook()``
    logs breaker changes. ``setup(call_middlewares=[ClientLog()])`` wires both; in a pipeline of
    your own, give them to the strategies (``event_hooks=`` or ``with_event_hook``) and to
    ``DefaultCircuitBreaker.subscribe``.

    Options:
        logger_name: given to ``structlog.get_logger``; default ``"aio_pipeline"``.
        log_headers: add the call's request headers (``headers``); default ``False``.
        deny_headers: more header names whose values are redacted; default none.
        every_call: log successful calls too (an access log of calls); default ``False``.
        log_attempts: log every attempt at debug (``aio_pipeline.client.attempt``); default
            ``False``, so that strategies build no per-attempt events for the log.
        trace_ids: gives the active span's ``(trace_id, span_id)``, logged with the call (put
            ``ClientTracing`` outside this middleware, so that its call span is the active one);
            default ``None``: no ids.

    Constructing it without structlog installed raises ``ImportError`` with the install hint.
    """

    every_call: bool = False
    log_attempts: bool = False
    trace_ids: TraceIds | None = None

    def client_event_hook(self) -> EventHook:
        return ClientEvents(self.logger_name, self._logger, self.log_attempts)

    def circuit_breaker_hook(self) -> Callable[[CircuitStateChanged[Any]], None]:
        return BreakerEvents(self.logger_name, self._logger)

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``)."""
        every_call, log_call = self.every_call, self._log_call

        async def logged(request: Request) -> Response:
            clock = loop_clock()
            started = clock()
            try:
                response = await call_next(request)
            except BaseException as error:
                sent = getattr(error, "request", None)
                log_call(request, sent if isinstance(sent, Request) else None, started, clock(), None, error)
                raise
            sent = response.request
            if every_call or response.status >= 400 or (sent is not None and sent.attempt > 1):
                log_call(request, sent, started, clock(), response, None)
            return response

        return logged

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)

    def _log_call(
        self,
        request: Request,
        sent: Request | None,
        started: float,
        ended: float,
        response: Response | None,
        error: BaseException | None,
    ) -> None:
        """The call's event: ``sent`` is the attempt's request the outcome came from, if known."""
        fields = call_fields(request)
        if self.trace_ids is not None:
            _add_trace_ids(fields, self.trace_ids)
        if self.log_headers:
            fields["headers"] = _headers(request.headers.items(), self._deny)
        if response is not None:
            fields["status"] = response.status
            level = "warning" if response.status >= 500 else "info"
        else:
            fields["error"] = error_name(error) if error is not None else None
            level = "info" if isinstance(error, asyncio.CancelledError) else "warning"
        fields["duration"] = seconds(ended - started)
        if sent is not None:  # what the attempt was sent with
            deadline, priority = sent.deadline, sent.priority
        else:  # what the call would have resolved
            context = get_context()
            deadline = earliest(request.deadline, context.deadline)
            priority = request.priority or context.priority
        fields["attempts"] = sent.attempt if sent is not None else None
        fields["deadline_remaining"] = None if deadline is None else seconds(deadline.deadline_at - started)
        fields["priority"] = None if priority is None else priority.value
        log_event(self._logger, level, "aio_pipeline.client.call", fields)


@dataclass(frozen=True, slots=True)
class ServerLog(_Options):
    """The access log (``aio_pipeline.server.request``), and the request's values bound for the handler.

    The values are bound with ``structlog.contextvars`` for the handler's own log lines:
    ``client``, ``priority`` and ``deadline_remaining`` (seconds, at arrival); unbound when the
    request ends.

    Put it outermost (``aiohttp_middleware_factory(outer_middlewares=[ServerLog()])``) so that
    refused requests are logged too; there it binds what the caller sent (``X-Request-Timeout``,
    ``X-Request-Priority``). Inside the deadline and priority middlewares (``middlewares=``) it
    binds what the handler runs with, defaults included, but never sees a refused request.

    Under the aiohttp adapter the event is logged when the status is final, and ``status`` is
    what went on the wire (how it is decided: ``aio_pipeline.server.aiohttp``); ``rejected``
    (``deadline``, ``overloaded``) marks a request refused before its handler ran, ``aborted``
    one whose response had started when an error cut it (no ``status`` then: it is not known).
    Driven without the adapter, it logs what it saw when ``call_next`` ends.

    Options:
        logger_name: given to ``structlog.get_logger``; default ``"aio_pipeline"``.
        log_headers: add the request headers (``headers``); default ``False``.
        deny_headers: more header names whose values are redacted; default none.
        client_header_name: the header naming the calling service; default ``X-Service-Name``.
        trace_ids: gives the active span's ``(trace_id, span_id)``, read as the request arrives
            (put ``ServerTracing`` outside this middleware), logged and bound for the handler's
            own lines; default ``None``: no ids.

    Constructing it without structlog installed raises ``ImportError`` with the install hint.
    """

    client_header_name: str = SERVICE_NAME_HEADER
    trace_ids: TraceIds | None = None

    async def __call__(self, request: Any, call_next: Callable[[Any], Awaitable[Any]], /) -> Any:
        import structlog  # present: the constructor checked

        bound = self._bound(request)
        if self.trace_ids is not None:
            _add_trace_ids(bound, self.trace_ids)
        fields = {
            "method": request.method,
            "route": server_route(request) or "unmatched",
            "path": getattr(request, "path", None),
        }
        fields.update(bound)
        if self.log_headers:
            fields["headers"] = _headers(request.headers.items(), self._deny)
        fields["status"] = None  # set when known; here so that it is logged before ``error``
        exchange = exchange_of(request)
        if exchange is not None and exchange.clock is not None:
            clock, started = exchange.clock, exchange.started  # read by the adapter on arrival
        else:
            clock = loop_clock()
            started = clock()
        status: int | None = None
        error: BaseException | None = None
        with structlog.contextvars.bound_contextvars(**{k: v for k, v in bound.items() if v is not None}):
            try:
                response = await call_next(request)
                status = response.status
                return response
            except BaseException as raised:
                error = raised
                fields["error"] = error_name(error)
                fields["rejected"] = rejection(error)
                status = status_for(error)  # a guess, used only without the adapter's exchange
                raise
            finally:
                log = partial(self._log, fields, error, clock, started)
                if exchange is None:
                    log(status, False)
                else:
                    exchange.when_sent(log)

    def _log(
        self,
        fields: dict[str, Any],
        error: BaseException | None,
        clock: Callable[[], float],
        started: float,
        status: int | None,
        aborted: bool,
    ) -> None:
        # Warning: refused, failed on the server (5xx) or cut mid-response. Info: answered,
        # an HTTP exception below 500 (a 404) or a cancellation included.
        warn = error is not None and (aborted or isinstance(error, PipelineError) or (status or 0) >= 500)
        if aborted:  # a response had started: nothing was refused, and its status is not known
            fields.update(aborted=True, rejected=None)
        fields["status"] = status
        fields["duration"] = seconds(clock() - started)
        log_event(self._logger, "warning" if warn else "info", "aio_pipeline.server.request", fields)

    def _bound(self, request: Any) -> dict[str, Any]:
        context = get_context()
        if context.deadline is not None:
            remaining = seconds(context.deadline.timeout)
        else:
            remaining = seconds(parse_timeout(request.headers.get(TIMEOUT_HEADER)))
        priority = context.priority or Priority.parse(request.headers.get(PRIORITY_HEADER))
        return {
            "client": service_name(request, self.client_header_name),
            "priority": None if priority is None else priority.value,
            "deadline_remaining": remaining,
        }
