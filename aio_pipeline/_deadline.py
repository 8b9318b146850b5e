"""Deadlines: absolute points in time on the running event loop's clock.

A deadline is absolute inside a process (so it can be shared by every attempt of a call and
compared with others) and relative on the wire (``X-Request-Timeout`` carries the seconds left,
because two machines do not share a clock).
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass
from types import TracebackType

from ._errors import DeadlineExceededError

__all__ = ["LOW_TIMEOUT_THRESHOLD", "MAX_WIRE_TIMEOUT", "Deadline", "format_timeout", "parse_timeout", "within"]

#: Seconds below which a deadline is treated as spent: no attempt, hedge or handler starts
#: with less time than this left (as aio-request's ``low_timeout_threshold``, 5 ms).
LOW_TIMEOUT_THRESHOLD = 0.005


def _now() -> float:
    """The running loop's clock (virtual under a test clock), else the monotonic clock.

    asyncio's default loop clock *is* ``time.monotonic``, so both agree in production.
    """
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


@dataclass(frozen=True, slots=True, order=True)
class Deadline:
    """An absolute deadline, ``deadline_at`` in seconds on the loop's clock.

    Deadlines order by time, so the earlier of two is ``min(a, b)``.
    """

    deadline_at: float

    def __post_init__(self) -> None:
        if math.isnan(self.deadline_at):
            raise ValueError("deadline_at must be a number, got nan")

    @classmethod
    def from_timeout(cls, seconds: float) -> Deadline:
        """The deadline ``seconds`` from now; ``seconds`` must be finite and >= 0."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"timeout must be a finite number of seconds >= 0, got {seconds!r}")
        return cls(_now() + seconds)

    @property
    def timeout(self) -> float:
        """Seconds left until the deadline, never negative."""
        return max(self.deadline_at - _now(), 0.0)

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return _now() >= self.deadline_at

    def __truediv__(self, divisor: float) -> Deadline:
        """A deadline for one of ``divisor`` equal shares of the time left, from now."""
        if not divisor > 0 or not math.isfinite(divisor):
            raise ValueError(f"divisor must be a finite number > 0, got {divisor!r}")
        now = _now()
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
    text = value.strip(" \t")
    if not _WIRE_TIMEOUT.fullmatch(text):
        return None
    seconds = float(text)
    if seconds > MAX_WIRE_TIMEOUT:
        return None
    return max(seconds, 0.0)


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
        at = None if seconds is None else _now() + seconds
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
