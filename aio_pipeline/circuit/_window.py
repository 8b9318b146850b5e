"""``SlidingWindow``: successes and failures over the last few seconds, in time buckets.

The window spans ``duration`` seconds split into ``buckets`` equal buckets, aligned on the
clock (bucket ``i`` covers ``[i * width, (i + 1) * width)``). Counting only touches the newest
bucket and the running totals, and old buckets fall off as time moves on, so recording and
reading cost O(1) amortised and memory is bounded by ``buckets`` whatever the traffic. The
window is evaluated on whatever clock the caller passes ``now`` from: the breaker uses the
loop's monotonic clock, so a wall-clock jump can neither age samples out nor bring them back.
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["SlidingWindow"]


class _Bucket:
    __slots__ = ("failures", "index", "successes")

    def __init__(self, index: int) -> None:
        self.index = index
        self.successes = 0
        self.failures = 0


class SlidingWindow:
    """Outcome counts over the last ``duration`` seconds, in ``buckets`` time buckets.

    A sample stays counted for more than ``duration - duration / buckets`` and at most
    ``duration`` seconds: more buckets make the edge of the window sharper.
    """

    __slots__ = ("_buckets", "_failures", "_successes", "_width", "buckets", "duration")

    def __init__(self, duration: float, buckets: int) -> None:
        self.duration = duration
        self.buckets = buckets
        self._width = duration / buckets
        self._buckets: deque[_Bucket] = deque()
        # Running totals of the buckets in ``_buckets``, so reading them is O(1).
        self._successes = 0
        self._failures = 0

    def record(self, now: float, *, failed: bool) -> None:
        """Count one outcome at ``now`` (seconds on the caller's clock)."""
        position = now / self._width
        # floor() without a call for the usual clock (>= 0), where int() truncates the same way.
        index = int(position) if position >= 0 else math.floor(position)
        buckets = self._buckets
        if not buckets or buckets[-1].index != index:  # a new bucket: only then can old ones expire
            self._expire(index)
            if not buckets or buckets[-1].index < index:
                buckets.append(_Bucket(index))
        # A clock that went backwards (it should not; the loop clock is monotonic) lands in the
        # newest bucket rather than corrupting the order the expiry relies on.
        bucket = buckets[-1]
        if failed:
            bucket.failures += 1
            self._failures += 1
        else:
            bucket.successes += 1
            self._successes += 1

    def counts(self, now: float) -> tuple[int, int]:
        """``(successes, failures)`` within the window ending at ``now``."""
        self._expire(math.floor(now / self._width))
        return self._successes, self._failures

    def reset(self) -> None:
        """Forget every sample."""
        self._buckets.clear()
        self._successes = self._failures = 0

    def _expire(self, index: int) -> None:
        """Drop the buckets that have slid out of the window ending in bucket ``index``."""
        oldest_kept = index - self.buckets + 1
        while self._buckets and self._buckets[0].index < oldest_kept:
            bucket = self._buckets.popleft()
            self._successes -= bucket.successes
            self._failures -= bucket.failures
