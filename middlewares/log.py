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
    aio_pipeline.server.request                 info    one per request; warning when refused

Fields: ``method``, ``endpoint`` (``scheme://host:port``), ``route`` (the URL template; on the
server the matched resource, ``unmatched`` without one, and ``path``), ``status`` (or
``error``: the exception's class name), ``duration`` and ``deadline_remaining`` (seconds),
``priority``, ``attempt`` and ``attempt_kind``, ``client`` (from ``X-Service-Name``). Never
logged: bodies, query strings, userinfo, exception messages (they may quote a URL). Headers
only with ``log_headers=True``, and then the values of Authorization, Cookie, Set-Cookie,
Proxy-Authorization and of every name in ``deny_headers`` read ``[redacted]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from aio_pipeline._circuit import CircuitState, CircuitStateChanged
from aio_pipeline._context import get_context
from aio_pipeline._deadline import parse_timeout
from aio_pipeline._errors import DeadlineExceededError, InvalidRequestError, OverloadedError
from aio_pipeline._events import (
    AttemptFinished,
    AttemptStarted,
    BudgetExhausted,
    Event,
    EventHook,
    HedgeStarted,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryScheduled,
)
from aio_pipeline._labels import server_route, service_name
from aio_pipeline._pipeline import Handler
from aio_pipeline._priority import Priority
from aio_pipeline._request import Request
from aio_pipeline._response import Response
from aio_pipeline._wire import PRIORITY_HEADER, SERVICE_NAME_HEADER, TIMEOUT_HEADER

__all__ = ["DENIED_HEADERS", "ClientLog", "ServerLog"]

#: Headers whose values are never logged, whatever the options.
DENIED_HEADERS: Final = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization"})
INSTALL_HINT: Final = "logging needs structlog: pip install 'aio-pipeline[structlog]'"
_TALLY: Final = "aio_pipeline.log.tally"
_fallback = logging.getLogger("aio_pipeline.log")


def _get_logger(name: str) -> Any:
    try:
        import structlog
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return structlog.get_logger(name)


def _log(logger: Any, level: str, event: str, fields: dict[str, Any]) -> None:
    """Log ``event``, leaving out fields that are unknown (``None``). A failing processor or
    renderer is reported to the standard library's logging: it must not fail the call."""
    try:
        getattr(logger, level)(event, **{key: value for key, value in fields.items() if value is not None})
    except Exception:
        _fallback.exception("structlog failed to log %s", event)


def _debug_enabled(logger: Any) -> bool:
    """Whether ``logger`` would emit a debug event; ``True`` when it cannot tell."""
    try:
        bound = logger.bind()
        check = getattr(bound, "is_enabled_for", None) or getattr(bound, "isEnabledFor", None)
        return True if check is None else bool(check(logging.DEBUG))
    except Exception:
        return True


def _call_fields(request: Request) -> dict[str, Any]:
    """Method, ``scheme://host:port`` and the URL template: never userinfo, values or query."""
    try:
        endpoint: str | None = request.authority
    except InvalidRequestError:
        endpoint = None
    route = request.route
    return {"method": request.method, "endpoint": endpoint, "route": route}


def _error(error: BaseException) -> str:
    """The exception's class name (never its message: it may quote a URL), or ``cancelled``."""
    return "cancelled" if isinstance(error, asyncio.CancelledError) else type(error).__name__


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(max(value, 0.0), 6)


def _headers(items: Iterable[tuple[str, str]], deny: frozenset[str]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        shown = "[redacted]" if name.lower() in deny else value
        headers[name] = f"{headers[name]}, {shown}" if name in headers else shown
    return headers


class _Tally:
    """What the event hook learns of one call for its event: the attempts made, and the
    deadline and priority the first one was sent with (resolved inside the call)."""

    __slots__ = ("attempts", "deadline_remaining", "priority")

    def __init__(self) -> None:
        self.attempts = 0
        self.deadline_remaining: float | None = None
        self.priority: str | None = None


@dataclass(frozen=True, slots=True)
class _ClientEvents:
    """Equal for one logger name, so that subscribing it twice logs once."""

    name: str
    logger: Any = field(compare=False)

    def __call__(self, event: Event) -> None:
        request = event.request
        priority = None if request.priority is None else request.priority.value
        if isinstance(event, AttemptStarted):
            tally = request.extensions.get(_TALLY)
            if isinstance(tally, _Tally):
                tally.attempts += 1
                if tally.attempts == 1 and request.deadline is not None:
                    tally.deadline_remaining = _seconds(request.deadline.deadline_at - event.at)
                tally.priority = tally.priority or priority
            return
        if isinstance(event, AttemptFinished) and not _debug_enabled(self.logger):
            return  # the per-attempt event is debug: do not build what nobody will see
        fields = {**_call_fields(request), "attempt": request.attempt, "attempt_kind": request.attempt_kind}
        if isinstance(event, AttemptFinished):
            if isinstance(event.result, Response):
                fields["status"] = event.result.status
            else:
                fields["error"] = "cancelled" if event.result is None else _error(event.result)
            deadline = request.deadline  # remaining when the attempt started
            started = asyncio.get_running_loop().time() - event.elapsed
            left = None if deadline is None else _seconds(deadline.deadline_at - started)
            fields.update(duration=_seconds(event.elapsed), deadline_remaining=left, priority=priority)
            _log(self.logger, "debug", "aio_pipeline.client.attempt", fields)
        elif isinstance(event, RetryScheduled):
            fields.update(next_attempt=event.next_attempt, delay=_seconds(event.delay))
            _log(self.logger, "info", "aio_pipeline.client.retry_scheduled", fields)
        elif isinstance(event, HedgeStarted):
            _log(self.logger, "info", "aio_pipeline.client.hedge_started", {**fields, "after": _seconds(event.after)})
        elif isinstance(event, BudgetExhausted):
            _log(self.logger, "warning", "aio_pipeline.client.retry_budget_exhausted", {**fields, "kind": event.kind})
        elif isinstance(event, RetryAfterHonoured | RetryAfterGaveUp):
            fields["retry_after"] = _seconds(event.retry_after)
            if isinstance(event, RetryAfterHonoured):
                fields["delay"] = _seconds(event.delay)
            else:
                fields["limit"] = _seconds(event.limit)
            _log(self.logger, "info", "aio_pipeline.client.retry_after", fields)


@dataclass(frozen=True, slots=True)
class _BreakerEvents:
    """Equal for one logger name: a breaker shared by two clients logs each change once."""

    name: str
    logger: Any = field(compare=False)

    def __call__(self, event: CircuitStateChanged[Any]) -> None:
        level = "warning" if event.new is CircuitState.OPEN else "info"
        fields = {"endpoint": str(event.key), "old": event.old.value, "new": event.new.value, "reason": event.reason}
        _log(self.logger, level, "aio_pipeline.circuit_breaker.state_changed", fields)


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
    """Logs each call once (``aio_pipeline.client.call``); put it outermost, as a call middleware.

    Its ``client_event_hook()`` logs the strategies' events (attempts at debug level, retries,
    hedges, budget and Retry-After decisions) and tells the call's event how many ``attempts``
    were made, with what deadline and priority; its ``circuit_breaker_hook()`` logs breaker
    changes. ``setup(call_middlewares=[ClientLog()])`` wires both; in a pipeline of your own,
    give them to the strategies (``event_hooks=`` or ``with_event_hook``) and to
    ``DefaultCircuitBreaker.subscribe``.

    Options:
        logger_name: given to ``structlog.get_logger``; default ``"aio_pipeline"``.
        log_headers: add the call's request headers (``headers``); default ``False``.
        deny_headers: more header names whose values are redacted; default none.

    Constructing it without structlog installed raises ``ImportError`` with the install hint.
    """

    def client_event_hook(self) -> EventHook:
        return _ClientEvents(self.logger_name, self._logger)

    def circuit_breaker_hook(self) -> Callable[[CircuitStateChanged[Any]], None]:
        return _BreakerEvents(self.logger_name, self._logger)

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        context = get_context()
        deadlines = [d for d in (request.deadline, context.deadline) if d is not None]
        priority = request.priority or context.priority
        fields = _call_fields(request)
        if self.log_headers:
            fields["headers"] = _headers(request.headers.multi_items(), self._deny)
        tally = _Tally()
        loop = asyncio.get_running_loop()
        started = loop.time()
        level = "info"
        try:
            response = await call_next(request.with_extension(_TALLY, tally))
            fields["status"] = response.status
            return response
        except BaseException as error:
            fields["error"] = _error(error)
            level = "info" if isinstance(error, asyncio.CancelledError) else "warning"
            raise
        finally:
            fields["duration"] = _seconds(loop.time() - started)
            fields["attempts"] = tally.attempts or None
            if tally.deadline_remaining is not None:  # resolved inside the call: what was used
                fields["deadline_remaining"] = tally.deadline_remaining
            elif deadlines:
                fields["deadline_remaining"] = _seconds(min(deadlines).deadline_at - started)
            fields["priority"] = tally.priority or (priority.value if priority is not None else None)
            _log(self._logger, level, "aio_pipeline.client.call", fields)


@dataclass(frozen=True, slots=True)
class ServerLog(_Options):
    """The access log (``aio_pipeline.server.request``), and the request's values bound with
    ``structlog.contextvars`` for the handler's own log lines: ``client``, ``priority`` and
    ``deadline_remaining`` (seconds, at arrival); unbound when the request ends.

    Put it outermost (``aiohttp_middleware_factory(outer_middlewares=[ServerLog()])``) so that
    refused requests are logged too; there it binds what the caller sent (``X-Request-Timeout``,
    ``X-Request-Priority``). Inside the deadline and priority middlewares (``middlewares=``) it
    binds what the handler runs with, defaults included, but never sees a refused request.

    Options:
        logger_name: given to ``structlog.get_logger``; default ``"aio_pipeline"``.
        log_headers: add the request headers (``headers``); default ``False``.
        deny_headers: more header names whose values are redacted; default none.
        client_header_name: the header naming the calling service; default ``X-Service-Name``.

    Constructing it without structlog installed raises ``ImportError`` with the install hint.
    """

    client_header_name: str = SERVICE_NAME_HEADER

    async def __call__(self, request: Any, call_next: Callable[[Any], Awaitable[Any]], /) -> Any:
        import structlog  # present: the constructor checked

        bound = self._bound(request)
        fields = {
            "method": request.method,
            "route": server_route(request) or "unmatched",
            "path": getattr(request, "path", None),
        }
        fields.update(bound)
        if self.log_headers:
            fields["headers"] = _headers(request.headers.items(), self._deny)
        loop = asyncio.get_running_loop()
        started = loop.time()
        level = "info"
        with structlog.contextvars.bound_contextvars(**{k: v for k, v in bound.items() if v is not None}):
            try:
                response = await call_next(request)
                fields["status"] = response.status
                return response
            except DeadlineExceededError as error:
                fields.update(status=408, error=_error(error))  # 408: the adapter's default
                if error.request is request:  # the server's own deadline, not an outbound call's
                    fields["rejected"] = "deadline"
                level = "warning"
                raise
            except OverloadedError as error:
                fields.update(status=503, error=_error(error), rejected="overloaded")
                level = "warning"
                raise
            except Exception as error:
                code = getattr(error, "status", None)  # aiohttp's HTTPException is a response
                fields.update(status=code if isinstance(code, int) else 500, error=_error(error))
                level = "info" if isinstance(code, int) else "warning"
                raise
            except BaseException as error:
                fields["error"] = _error(error)
                raise
            finally:
                fields["duration"] = _seconds(loop.time() - started)
                _log(self._logger, level, "aio_pipeline.server.request", fields)

    def _bound(self, request: Any) -> dict[str, Any]:
        context = get_context()
        if context.deadline is not None:
            remaining = _seconds(context.deadline.timeout)
        else:
            remaining = _seconds(parse_timeout(request.headers.get(TIMEOUT_HEADER)))
        priority = context.priority or Priority.parse(request.headers.get(PRIORITY_HEADER))
        return {
            "client": service_name(request, self.client_header_name),
            "priority": None if priority is None else priority.value,
            "deadline_remaining": remaining,
        }
