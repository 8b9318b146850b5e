"""What the logging middlewares (``middlewares.log``) log, without structlog: the event hooks
that turn strategy and breaker events into log events, and the fields of a call. Any logger
with structlog's ``info``/``debug``/``warning`` methods works here; ``middlewares.log`` is the
one module that imports structlog."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Final

from aio_pipeline.circuit import CircuitState, CircuitStateChanged
from aio_pipeline.errors import InvalidRequestError
from aio_pipeline.http import Request, Response
from aio_pipeline.policy import (
    AttemptFinished,
    AttemptStarted,
    BudgetExhausted,
    Event,
    HedgeStarted,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryScheduled,
)

__all__ = [
    "BreakerEvents",
    "ClientEvents",
    "call_fields",
    "error_name",
    "log_event",
    "seconds",
]

#: The strategy events that are decisions (logged by default), and every kind.
_DECISIONS: Final = frozenset({RetryScheduled, HedgeStarted, BudgetExhausted, RetryAfterHonoured, RetryAfterGaveUp})
_EVERY_EVENT: Final = _DECISIONS | {AttemptStarted, AttemptFinished}
_fallback = logging.getLogger("aio_pipeline.log")


def log_event(logger: Any, level: str, event: str, fields: dict[str, Any]) -> None:
    """Log ``event``, leaving out fields that are unknown (``None``). A failing processor or
    renderer is reported to the standard library's logging: it must not fail the call."""
    try:
        getattr(logger, level)(event, **{key: value for key, value in fields.items() if value is not None})
    except Exception:
        _fallback.exception("structlog failed to log %s", event)


def debug_enabled(logger: Any) -> bool:
    """Whether ``logger`` would emit a debug event; ``True`` when it cannot tell."""
    try:
        bound = logger.bind()
        check = getattr(bound, "is_enabled_for", None) or getattr(bound, "isEnabledFor", None)
        return True if check is None else bool(check(logging.DEBUG))
    except Exception:
        return True


def call_fields(request: Request) -> dict[str, Any]:
    """Method, ``scheme://host:port`` and the URL template: never userinfo, values or query."""
    try:
        endpoint: str | None = request.authority
    except InvalidRequestError:
        endpoint = None
    route = request.route
    return {"method": request.method, "endpoint": endpoint, "route": route}


def error_name(error: BaseException) -> str:
    """The exception's class name (never its message: it may quote a URL), or ``cancelled``."""
    return "cancelled" if isinstance(error, asyncio.CancelledError) else type(error).__name__


def seconds(value: float | None) -> float | None:
    return None if value is None else round(max(value, 0.0), 6)


@dataclass(frozen=True, slots=True)
class ClientEvents:
    """Logs strategy events; with ``attempts``, every finished attempt at debug too. Equal for one
    logger name, so that subscribing it twice logs once."""

    name: str
    logger: Any = field(compare=False)
    attempts: bool = False

    @property
    def event_types(self) -> frozenset[type]:
        """What it takes: strategies build attempt events for it only when it logs them."""
        return _EVERY_EVENT if self.attempts else _DECISIONS

    def __call__(self, event: Event) -> None:
        request = event.request
        priority = None if request.priority is None else request.priority.value
        if isinstance(event, AttemptStarted):
            return
        if isinstance(event, AttemptFinished) and (not self.attempts or not debug_enabled(self.logger)):
            return  # the per-attempt event is debug: do not build what nobody will see
        fields = {**call_fields(request), "attempt": request.attempt, "attempt_kind": request.attempt_kind}
        if isinstance(event, AttemptFinished):
            if isinstance(event.result, Response):
                fields["status"] = event.result.status
            else:
                fields["error"] = "cancelled" if event.result is None else error_name(event.result)
            deadline = request.deadline  # remaining when the attempt started
            started = asyncio.get_running_loop().time() - event.elapsed
            left = None if deadline is None else seconds(deadline.deadline_at - started)
            fields.update(duration=seconds(event.elapsed), deadline_remaining=left, priority=priority)
            log_event(self.logger, "debug", "aio_pipeline.client.attempt", fields)
        elif isinstance(event, RetryScheduled):
            fields.update(next_attempt=event.next_attempt, delay=seconds(event.delay))
            log_event(self.logger, "info", "aio_pipeline.client.retry_scheduled", fields)
        elif isinstance(event, HedgeStarted):
            log_event(
                self.logger, "info", "aio_pipeline.client.hedge_started", {**fields, "after": seconds(event.after)}
            )
        elif isinstance(event, BudgetExhausted):
            log_event(
                self.logger, "warning", "aio_pipeline.client.retry_budget_exhausted", {**fields, "kind": event.kind}
            )
        elif isinstance(event, RetryAfterHonoured | RetryAfterGaveUp):
            fields["retry_after"] = seconds(event.retry_after)
            if isinstance(event, RetryAfterHonoured):
                fields["delay"] = seconds(event.delay)
            else:
                fields["limit"] = seconds(event.limit)
            log_event(self.logger, "info", "aio_pipeline.client.retry_after", fields)


@dataclass(frozen=True, slots=True)
class BreakerEvents:
    """Equal for one logger name: a breaker shared by two clients logs each change once."""

    name: str
    logger: Any = field(compare=False)

    def __call__(self, event: CircuitStateChanged[Any]) -> None:
        level = "warning" if event.new is CircuitState.OPEN else "info"
        fields = {"endpoint": str(event.key), "old": event.old.value, "new": event.new.value, "reason": event.reason}
        log_event(self.logger, level, "aio_pipeline.circuit_breaker.state_changed", fields)
