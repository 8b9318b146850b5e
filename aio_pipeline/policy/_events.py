"""Events: what strategies decide, as small frozen objects handed to hooks.

A hook is any ``Callable[[Event], None]``. Strategies call the hooks they were configured with
AND the hooks the request carries (``aio_pipeline.extensions.EVENT_HOOKS``, added with
``with_event_hook``), so that a strategy a user creates for one call still reports to the
client's metrics and logs. Hooks run synchronously, inline: keep them cheap. A hook that raises
is logged and ignored; it never breaks the call. Every ``request`` below is the attempt's own
(``attempt``, ``attempt_kind`` and ``deadline`` filled in); times are loop-clock seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from ..chain import Handler
from ..http import Request, Response
from ._classify import Outcome, ResponseClassifier, ResponseVerdict, Result
from ._delays import RequestAttemptDelaysProvider, latency_sample

__all__ = [
    "AttemptFinished",
    "AttemptStarted",
    "BudgetExhausted",
    "Emitter",
    "Event",
    "EventHook",
    "HedgeStarted",
    "RetryAfterGaveUp",
    "RetryAfterHonoured",
    "RetryScheduled",
    "run_attempt",
    "wants",
]

_logger = logging.getLogger("aio_pipeline.events")


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    """An attempt is about to be sent, at loop time ``at``."""

    request: Request
    at: float


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """An attempt ended after ``elapsed`` seconds with ``result`` (a response or an exception;
    ``None`` when ``cancelled``, e.g. a losing hedge). ``verdict`` is ``None`` when unclassified."""

    request: Request
    elapsed: float
    result: Result | None
    verdict: ResponseVerdict | None
    cancelled: bool = False

    @property
    def status(self) -> int | None:
        return self.result.status if isinstance(self.result, Response) else None


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    """``request`` was rejected; attempt ``next_attempt`` follows in ``delay`` seconds."""

    request: Request
    next_attempt: int
    delay: float


@dataclass(frozen=True, slots=True)
class HedgeStarted:
    """A hedge (``request``) was sent ``after`` seconds after the previous attempt started,
    which had not finished."""

    request: Request
    after: float


@dataclass(frozen=True, slots=True)
class BudgetExhausted:
    """The retry budget refused attempt ``attempt`` (``kind`` ``"retry"`` or ``"hedge"``)."""

    request: Request
    attempt: int
    kind: str


@dataclass(frozen=True, slots=True)
class RetryAfterHonoured:
    """The server asked for ``retry_after`` seconds; the next attempt waits ``delay``."""

    request: Request
    retry_after: float
    delay: float


@dataclass(frozen=True, slots=True)
class RetryAfterGaveUp:
    """The server asked for ``retry_after`` seconds, longer than ``limit`` (the time left or the
    strategy's maximum), so no further attempt is made."""

    request: Request
    retry_after: float
    limit: float


Event: TypeAlias = (
    "AttemptStarted | AttemptFinished | RetryScheduled | HedgeStarted | BudgetExhausted"
    " | RetryAfterHonoured | RetryAfterGaveUp"
)
EventHook: TypeAlias = Callable[[Event], None]


def wants(hook: EventHook, kind: type) -> bool:
    """Whether ``hook`` takes events of ``kind``. A hook may say which it takes with an
    ``event_types`` attribute (a collection of event classes), so that a strategy whose hooks
    want none of an attempt's events builds none; without it, a hook takes every kind."""
    types = getattr(hook, "event_types", None)
    return types is None or kind in types


class Emitter:
    """The hooks of one call (``event_hooks_for``: the strategy's own, then the request's). False when there are none,
    so callers skip building events nobody listens to."""

    __slots__ = ("_hooks",)

    def __init__(self, hooks: Sequence[EventHook]) -> None:
        self._hooks = tuple(hooks)

    def __bool__(self) -> bool:
        return bool(self._hooks)

    def emit(self, event: Event) -> None:
        for hook in self._hooks:
            try:
                hook(event)
            except Exception:  # observability must never break the call it observes
                _logger.exception("event hook %r failed on %s", hook, type(event).__name__)


async def run_attempt(
    call_next: Handler[Request, Response],
    request: Request,
    classifier: ResponseClassifier | None,
    events: Emitter,
    latency: RequestAttemptDelaysProvider | None = None,
) -> Outcome:
    """Send one attempt, catch what it raises (but never ``CancelledError``), classify it, and
    report its start and end: to the hooks, and to the ``latency`` tracker (if any) whatever
    ``latency_sample`` says the attempt tells, a cancellation at its deadline included.

    A classifier that raises has its exception raised here, the response closed first.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    if events:
        events.emit(AttemptStarted(request, started))
    try:
        result: Result = await call_next(request)
    except Exception as error:
        result = error
    except asyncio.CancelledError:
        if events or latency is not None:
            elapsed = loop.time() - started
            if events:
                events.emit(AttemptFinished(request, elapsed, None, None, cancelled=True))
            if latency is not None:
                seconds = latency_sample(request, None, accepted=False, started_at=started, elapsed=elapsed)
                if seconds is not None:
                    latency.observe(request, seconds)
        raise
    elapsed = loop.time() - started
    try:
        verdict = classifier.classify_result(result) if classifier is not None else None
    except BaseException:  # a broken classifier must not leak the connection
        if isinstance(result, Response):
            await result.close()
        raise
    if events:
        events.emit(AttemptFinished(request, elapsed, result, verdict))
    if latency is not None:
        seconds = latency_sample(
            request, result, accepted=verdict is ResponseVerdict.ACCEPT, started_at=started, elapsed=elapsed
        )
        if seconds is not None:
            latency.observe(request, seconds)
    return Outcome(request, result, verdict, started, elapsed)
