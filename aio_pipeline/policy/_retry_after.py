"""``Retry-After``: reading the server's pushback, and deciding how long to wait before trying again.

Both forms of RFC 9110 are read: delta-seconds (``120``) and an HTTP-date
(``Wed, 21 Oct 2015 07:28:00 GMT``, measured against the wall clock, the only clock two machines
share). Bad values give ``None``; nothing here raises.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
import time
from dataclasses import dataclass

from ..http import Response
from ..propagation import LOW_TIMEOUT_THRESHOLD
from ._classify import Result

__all__ = ["RETRY_AFTER_STATUSES", "WaitPlan", "parse_retry_after", "plan_wait", "retry_after_of"]

#: Only these statuses carry a Retry-After that asks a client to come back later.
RETRY_AFTER_STATUSES = frozenset({429, 503})

# RFC 9110 says an integer; a decimal is tolerated, a sign or an exponent is not.
_DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?")


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` value, never negative.

    ``now`` is the wall-clock time (``time.time()`` by default) an HTTP-date is measured from; a
    date in the past gives ``0.0``. ``None``, empty, unparsable or non-finite values give ``None``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        moment = email.utils.parsedate_to_datetime(text)
        if moment.tzinfo is None:  # no zone (or -0000): HTTP-dates are GMT
            moment = moment.replace(tzinfo=datetime.UTC)
        at = moment.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError, OSError):
        return None
    return max(at - (time.time() if now is None else now), 0.0)


def retry_after_of(result: Result) -> float | None:
    """The wait a 429 or 503 response asks for, else ``None``."""
    if isinstance(result, Response) and result.status in RETRY_AFTER_STATUSES:
        return parse_retry_after(result.headers.get("Retry-After"))
    return None


@dataclass(frozen=True, slots=True)
class WaitPlan:
    """When to try again: ``delay`` seconds from now, or never (``delay is None``).

    ``retry_after`` is the server's ask when there was one; ``limit`` the longest wait that was
    possible (the smaller of the time left and ``max_retry_after``), for the give-up event.
    """

    delay: float | None
    retry_after: float | None = None
    limit: float = math.inf


def plan_wait(delay: float, retry_after: float | None, *, max_retry_after: float, remaining: float | None) -> WaitPlan:
    """Combine a backoff ``delay`` with the server's ``retry_after`` under the deadline.

    The wait is the longer of the two. A ``retry_after`` beyond ``max_retry_after`` is refused
    (retrying earlier than the server asked would disrespect it), and so is any wait after which
    less than ``LOW_TIMEOUT_THRESHOLD`` would remain of ``remaining`` (``None``: no deadline):
    no sleep ever extends past the deadline.
    """
    delay = delay if delay > 0 else 0.0  # also turns a NaN from a user's provider into 0
    wait = delay if retry_after is None else max(delay, retry_after)
    budget = math.inf if remaining is None else remaining - LOW_TIMEOUT_THRESHOLD
    limit = budget if retry_after is None else min(budget, max_retry_after)
    if retry_after is not None and retry_after > max_retry_after:
        return WaitPlan(None, retry_after, limit)
    if not math.isfinite(wait) or wait > budget:
        return WaitPlan(None, retry_after, limit)
    return WaitPlan(wait, retry_after, limit)
