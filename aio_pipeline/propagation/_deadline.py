"""Deadlines: absolute points in time on the running event loop's clock.

A deadline is absolute inside a process (so it can be shared by every attempt of a call and
compared with others) and relative on the wire (``X-Request-Timeout`` carries the seconds left,
because two machines do not share a clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from ..errors import DeadlineExceededError, DeadlineRejectedError

__all__ = [
    "DEFAULT_TIMEOUT",
    "LOW_TIMEOUT_THRESHOLD",
    "MAX_WIRE_TIMEOUT",
    "Deadline",
    "DeadlineScope",
    "DeadlineTimer",
    "clock_of",
    "covered",
    "covering",
    "earliest",
    "format_timeout",
    "loop_clock",
    "loop_time",
    "own_bound",
    "parse_timeout",
    "time_to_send",
    "within",
]

#: The deadline, in seconds, of a call or a server request that brings none and whose owner set
#: no default of its own (aio-request's): ``ClientDeadline``, ``ServerDeadline``, ``setup()`` and
#: ``aiohttp_middleware_factory()`` all take it from here.
DEFAULT_TIMEOUT = 20.0

#: Seconds below which a deadline is treated as spent: no attempt, hedge or handler starts
#: with less time than this left (as aio-request's ``low_timeout_threshold``, 5 ms).
LOW_TIMEOUT_THRESHOLD = 0.005


def loop_time() -> float:
    """The running loop's clock (virtual under a test clock), else the monotonic clock.

    This runs several times per call, so it is cheap where it can be: inside a call the clock
    comes from the call's deadline scope (``ClientDeadline``'s), which looked it up once,
    since asking for the running loop costs a system call (``getpid``) every time on Python
    3.11; and asyncio's own loops keep ``time.monotonic`` (their ``time()`` calls it), so for
    them it is called directly.
    """
    scope = _COVERING.get()
    if scope is not None:
        return scope.clock()
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return time.monotonic()
    return clock_of(loop)()


def loop_clock() -> Callable[[], float]:
    """The running loop's clock as a function to call (see ``loop_time``): for a layer that reads
    the time twice per call."""
    scope = _COVERING.get()
    if scope is not None:
        return scope.clock
    return clock_of(asyncio.get_running_loop())


def clock_of(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop``'s clock: ``time.monotonic`` itself for asyncio's own loops (their ``time()`` only
    calls it), else ``loop.time`` (uvloop's, a test's virtual clock). Remembered for the
    last loop asked about (``_CLOCK``): a memo of a fact about that loop, never stale, since a
    new loop is looked at afresh."""
    global _CLOCK
    seen, clock = _CLOCK  # one read of one tuple: another thread's loop cannot mix in
    if loop is not seen:
        clock = time.monotonic if type(loop).time is asyncio.BaseEventLoop.time else loop.time
        _CLOCK = (loop, clock)
    return clock


#: The last running loop ``_clock_of`` saw, and its clock, replaced whole (loops in two threads
#: just take turns at it).
_CLOCK: tuple[asyncio.AbstractEventLoop | None, Callable[[], float]] = (None, time.monotonic)


_set = object.__setattr__


@dataclass(frozen=True, slots=True, order=True, init=False)
class Deadline:
    """An absolute deadline, ``deadline_at`` in seconds on the loop's clock.

    Deadlines order by time, so the earlier of two is ``min(a, b)``.
    """

    deadline_at: float

    def __init__(self, deadline_at: float) -> None:
        # Written out rather than generated with a __post_init__ check: one made per call.
        if deadline_at != deadline_at:  # NaN, the one value unequal to itself
            raise ValueError("deadline_at must be a number, got nan")
        _set(self, "deadline_at", deadline_at)

    @classmethod
    def from_timeout(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now; ``seconds`` must be finite and >= 0."""
        if not 0 <= seconds < math.inf:  # NaN fails every comparison
            raise ValueError(f"timeout must be a finite number of seconds >= 0, got {seconds!r}")
        return cls(loop_time() + seconds)

    @property
    def timeout(self) -> float:
        """Seconds left until the deadline, never negative."""
        return max(self.deadline_at - loop_time(), 0.0)

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return loop_time() >= self.deadline_at

    def __truediv__(self, divisor: float) -> Deadline:
        """A deadline for one of ``divisor`` equal shares of the time left, from now."""
        if not divisor > 0 or not math.isfinite(divisor):
            raise ValueError(f"divisor must be a finite number > 0, got {divisor!r}")
        now = loop_time()
        return Deadline(now + max(self.deadline_at - now, 0.0) / divisor)

    def __repr__(self) -> str:
        return f"Deadline(timeout={self.timeout:.4f})"


def format_timeout(seconds: float) -> str:
    """Seconds left as ``X-Request-Timeout`` writes them: a decimal such as ``4.9873``."""
    return f"{max(seconds, 0.0):.4f}"


#: The most seconds an ``X-Request-Timeout`` may carry: one day. No call between services waits
#: that long; a larger value is a bug or an attack, and is treated like an unparsable one.
MAX_WIRE_TIMEOUT = 86_400.0

# Decimal seconds in ASCII, as both ends write them: ``format_timeout`` writes ``4.9873``, and
# aio-request writes Python's float repr (``4.999973525000087``, ``5e-05``), hence the optional
# exponent. A minus sign is a deadline already spent. Nothing else: Python's ``float()`` would
# also take ``1_0``, ``nan``, ``inf`` and other scripts' digits (``١٢``). Whitespace around the
# value is HTTP's (SP, HTAB).
_WIRE_TIMEOUT = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
# Longer than this is not a timeout anyone sends: refused before any parsing.
_MAX_WIRE_LENGTH = 32


def parse_timeout(value: str | None) -> float | None:
    """Read an ``X-Request-Timeout`` value as seconds; ``None`` when it carries no deadline.

    The grammar is strict: optional spaces or tabs, an optional ``-``, ASCII digits with an
    optional ``.`` fraction and an optional exponent (``4.9873``, ``2``, ``.5``, ``5e-05``),
    optional spaces or tabs. Anything else (empty, ``nan``, ``inf``, ``1_0``, ``+5``, non-ASCII
    digits, more than 32 characters) and any value above ``MAX_WIRE_TIMEOUT`` (a day; ``1e300``
    included) give ``None``: the receiver's default applies.
    Zero and negative values give ``0.0``: the deadline has already passed.
    """
    if value is None or len(value) > _MAX_WIRE_LENGTH:
        return None
    if not _WIRE_TIMEOUT.fullmatch(value):  # as sent, the usual case; else without the spaces
        value = value.strip(" \t")
        if not _WIRE_TIMEOUT.fullmatch(value):
            return None
    seconds = float(value)
    if seconds > MAX_WIRE_TIMEOUT:
        return None
    return seconds if seconds > 0 else 0.0


class within:
    """``async with within(at, request=..., message=...):`` cancels the body at loop time ``at``
    (``None``: never) and raises ``DeadlineExceededError(message)`` for that expiry, and only
    for it: a ``TimeoutError`` the body raised itself (a library's own timeout) goes through as
    it is. ``within.after(seconds, ...)`` counts from now and says how long it waited. The one
    place that tells our deadline from anyone else's timeout, for transports, adapters and the
    deadline middlewares.
    """

    __slots__ = ("_message", "_request", "_scope", "_seconds")

    def __init__(self, at: float | None, *, request: object, message: str, seconds: float | None = None) -> None:
        self._scope = asyncio.timeout_at(at)
        self._request = request
        self._message = message
        self._seconds = seconds

    @classmethod
    def after(cls, seconds: float | None, *, request: object, message: str) -> within:
        at = None if seconds is None else loop_time() + seconds
        return cls(at, request=request, message=message, seconds=seconds)

    async def __aenter__(self) -> None:
        await self._scope.__aenter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self._scope.__aexit__(exc_type, exc, tb)
        except TimeoutError as error:  # raised by the scope only when it expired and cancelled us
            message = self._message if self._seconds is None else f"{self._message} within {self._seconds:.3f}s"
            raise DeadlineExceededError(message, request=self._request) from error


# --- one timer for many deadlines ----------------------------------------------------------------

_LIVE, _EXPIRED, _LEFT = 0, 1, 2


class DeadlineScope:
    """One deadline being enforced on one task: ``deadline`` (``at``, loop clock seconds) and its
    state.

    Returned by ``DeadlineTimer.enter``, which also makes it the ``covering()`` scope of the
    code inside until ``leave``: layers inside then need no timer of their own for a deadline it
    already enforces.
    """

    __slots__ = ("at", "cancelling", "clock", "deadline", "state", "task", "token")

    def __init__(
        self, deadline: Deadline, task: asyncio.Task[object], cancelling: int, clock: Callable[[], float]
    ) -> None:
        self.deadline = deadline
        self.clock = clock  # the loop's, for the layers inside (see ``loop_time``)
        self.at = deadline.deadline_at
        self.task = task
        self.cancelling = cancelling  # the task's pending cancellations when the scope began
        self.state = _LIVE
        self.token: contextvars.Token[DeadlineScope | None] | None = None

    @property
    def live(self) -> bool:
        """Entered, not left, and not yet expired."""
        return self.state == _LIVE


#: The innermost live ``DeadlineScope`` of the current task (inherited by the tasks it starts,
#: e.g. hedged attempts inside a ``TaskGroup``, which the scope's cancellation reaches too).
_COVERING: contextvars.ContextVar[DeadlineScope | None] = contextvars.ContextVar(
    "aio_pipeline_covering_deadline", default=None
)


def covering() -> DeadlineScope | None:
    """The scope of the call this code runs in (``ClientDeadline``'s), if any and still live:
    what a call made from here inherits, as a redirect hop or a middleware's own call does."""
    scope = _COVERING.get()
    return scope if scope is not None and scope.state == _LIVE else None


def covered(deadline: Deadline) -> bool:
    """Whether the enclosing call's live scope already enforces ``deadline`` (it is the same, or
    later): then a transport needs no timer of its own for it.

    The scope cancels the task that entered it; tasks started inside the call are reached
    through whoever awaits them, as hedging's ``TaskGroup`` does, which is the rule for any task
    a middleware starts: it ends with the call. Background work that may outlive the call is
    started inside ``detached()``, which leaves the call's scope behind.
    """
    scope = _COVERING.get()
    return (
        scope is not None and scope.state == _LIVE and (scope.deadline is deadline or scope.at <= deadline.deadline_at)
    )


def own_bound(deadline: Deadline | None, timeout: float | None) -> float | None:
    """The part of a transport's ``timeout`` (seconds from now; ``None``: unbounded) that it must
    enforce itself, for a request whose deadline is ``deadline``: ``None`` when that deadline is
    ``covered()`` (``Pipeline`` derives ``timeout`` from it), else ``timeout``. A transport that
    arms no timer for a covered call spares its library's own too (aiohttp's per-request timer):
    one timer per call."""
    if timeout is not None and deadline is not None and covered(deadline):
        return None
    return timeout


def time_to_send(deadline: Deadline, request: object) -> float:
    """Seconds left of ``deadline`` for ``request`` about to be sent; ``DeadlineRejectedError``
    ("deadline expired before sending") when none are: the one check every way of sending
    makes (``Transport.send_request``, the transports, the drop-in adapters)."""
    left = deadline.deadline_at - loop_time()
    if left <= 0:
        raise DeadlineRejectedError("deadline expired before sending", request=request)
    return left


def earliest(first: Deadline | None, second: Deadline | None) -> Deadline | None:
    """The earlier of two deadlines, ignoring ``None``; ``None`` when both are."""
    if first is None:
        return second
    if second is None or first.deadline_at <= second.deadline_at:
        return first
    return second


class DeadlineTimer:
    """Cancels each task at its deadline with a single loop timer, armed for the earliest one.

    ``asyncio.timeout`` arms one ``TimerHandle`` per scope; in a busy client that is thousands
    of handles that the loop keeps in its heap, compares in Python and cancels again when the
    call ends in time, which nearly every call does. Here each scope is a tuple pushed on a heap
    of our own (compared in C); one handle is armed for the earliest deadline; a scope that ends
    is only marked, and dropped when it reaches the top or when marked ones are half the heap.
    Expiry follows ``asyncio.timeout``'s protocol: the task is cancelled, and the owner of the
    scope turns the ``CancelledError`` into its own error only if ``uncancel()`` shows nobody
    else cancelled the task meanwhile::

        scope = timer.enter(deadline, loop)
        try:
            return await call_next(request)
        except asyncio.CancelledError as error:
            if timer.leave(scope) and scope.task.uncancel() <= scope.cancelling:
                raise DeadlineExceededError(...) from error
            raise
        finally:
            if timer.leave(scope):  # expired, but the body did not let the cancellation out
                scope.task.uncancel()

    One instance per owner (``ClientDeadline`` keeps one), used from one event loop at a time;
    it follows the running loop if that changes (a new loop in the next test, say).
    """

    __slots__ = ("_armed_at", "_handle", "_heap", "_left", "_loop", "_order")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heap: list[tuple[float, int, DeadlineScope]] = []
        self._order = itertools.count()
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf
        self._left = 0  # scopes left but still in the heap

    def __len__(self) -> int:
        """Scopes still held in the heap (live or left but not yet dropped): bounded by twice
        the live ones, plus a constant."""
        return len(self._heap)

    def enter(self, deadline: Deadline, loop: asyncio.AbstractEventLoop) -> DeadlineScope:
        """Start enforcing ``deadline`` on the current task; the scope covers the code that runs
        until ``leave`` (``covering()``). Leave it in the same task, exactly as entered."""
        if loop is not self._loop:
            self._follow(loop)
        task = asyncio.current_task(loop)
        if task is None:
            raise RuntimeError("a deadline scope needs a running task")
        scope = DeadlineScope(deadline, task, task.cancelling(), clock_of(loop))
        at = scope.at
        heapq.heappush(self._heap, (at, next(self._order), scope))
        if at < self._armed_at:
            self._arm(at)
        scope.token = _COVERING.set(scope)
        return scope

    def leave(self, scope: DeadlineScope) -> bool:
        """Stop enforcing ``scope``; ``True`` when it expired, i.e. this timer cancelled the
        task (the caller then owes the task one ``uncancel()``). Safe to call twice."""
        if scope.token is not None:
            # A coroutine closed by the garbage collector, outside the task that entered the
            # scope, runs this in another context, where the token is not valid: nothing to undo.
            with contextlib.suppress(ValueError):
                _COVERING.reset(scope.token)
            scope.token = None
        state = scope.state
        if state == _LIVE:
            scope.state = _LEFT
            self._left += 1
            if self._left > 32 and 2 * self._left > len(self._heap):
                self._compact()
            return False
        if state == _EXPIRED:
            scope.state = _LEFT  # already out of the heap
            return True
        return False

    def _follow(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._loop, self._heap, self._handle, self._armed_at, self._left = loop, [], None, math.inf, 0

    def _arm(self, at: float) -> None:
        assert self._loop is not None
        if self._handle is not None:
            self._handle.cancel()
        self._armed_at = at
        self._handle = self._loop.call_at(at, self._fire)

    def _fire(self) -> None:
        assert self._loop is not None
        self._handle, self._armed_at = None, math.inf
        now, heap = self._loop.time(), self._heap
        while heap:
            at, _, scope = heap[0]
            if scope.state == _LEFT:
                heapq.heappop(heap)
                self._left -= 1
            elif at <= now:
                heapq.heappop(heap)
                scope.state = _EXPIRED
                scope.task.cancel()
            else:
                self._arm(at)
                return

    def _compact(self) -> None:
        self._heap = [entry for entry in self._heap if entry[2].state == _LIVE]
        heapq.heapify(self._heap)
        self._left = 0
        if not self._heap and self._handle is not None:
            self._handle.cancel()
            self._handle, self._armed_at = None, math.inf
