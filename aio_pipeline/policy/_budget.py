"""``RetryBudget``: extra attempts as a share of real traffic, not a count per call.

Why a budget, and not only "at most 3 attempts"
-----------------------------------------------
A maximum number of attempts is a promise about one call; it says nothing about what a client
does to a server in trouble. When a backend starts failing, every call that fails tries again,
so the failing backend sees its load multiplied exactly when it can least afford it: three
attempts triple it, and three layers of services each making three attempts turn one user click
into 27 calls to the bottom of the stack. The retries that were meant to ride out a blip become
the outage, and the service cannot recover until clients give up.

The number itself is guesswork, too. Too low and a short blip fails calls that one more attempt
would have saved; too high and a real outage is amplified. No single value is right for both,
because the right amount of retrying depends on how much is failing *right now*.

A budget asks that question. Each call deposits into a shared account; each extra attempt (a
retry or a hedge) withdraws from it. Extra attempts are allowed up to ``ratio`` of the calls made
recently (20% by default), so a healthy client whose occasional call fails retries it freely,
while a client facing a dead backend adds at most 20% to its load instead of 200%. A small
reserve, ``min_per_second`` retries per second of the window, lets a quiet client that makes a
handful of calls still retry them. The per-call maximum stays, as a bound on latency; the budget
is the bound on load. (The idea and the defaults come from Finagle, as tower also uses them.)

The budget is one object per client (the strategy selector owns one and hands it to every
strategy through the request), shared by retries and hedges, and readable at any time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..propagation import loop_time

__all__ = ["RetryBudget"]


@dataclass(eq=False)
class RetryBudget:
    """Allows extra attempts up to a share of the first attempts, plus a small reserve.

    The allowance is ``ratio`` of the first attempts plus ``min_per_second`` times
    ``window_seconds``, both counted over the last ``window_seconds``: by default 20% plus 10 per
    second over 10 s. Share one instance per client.

    Options:
        ratio: extra attempts per first attempt, a fraction >= 0 (0.2: 20%); default 0.2.
        min_per_second: the reserve, extra attempts per second of the window, >= 0; default 10.
        window_seconds: the window counted over, seconds, > 0; default 10.
        buckets: the steps the window slides in, a count >= 1; default 10.
        clock: ``() -> seconds``, monotonic; default the running loop's clock (``loop_time``).
    """

    ratio: float = 0.2
    min_per_second: float = 10.0
    window_seconds: float = 10.0
    buckets: int = 10
    clock: Callable[[], float] = field(default=loop_time, repr=False)
    # Per bucket: the bucket's number (time // width), first attempts, extra attempts.
    _slots: list[list[int]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("ratio", "min_per_second"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (math.isfinite(self.window_seconds) and self.window_seconds > 0):
            raise ValueError(f"window_seconds must be a finite number > 0, got {self.window_seconds!r}")
        if self.buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {self.buckets!r}")
        self._slots = [[-1, 0, 0] for _ in range(self.buckets)]

    def _slot(self) -> list[int]:
        position = self.clock() * self.buckets / self.window_seconds
        number = int(position) if position >= 0 else math.floor(position)  # floor, with no call as a rule
        slot = self._slots[number % self.buckets]
        if slot[0] != number:
            slot[:] = [number, 0, 0]
        return slot

    def _totals(self) -> tuple[int, int]:
        current = self._slot()[0]
        live = [slot for slot in self._slots if current - self.buckets < slot[0] <= current]
        return sum(slot[1] for slot in live), sum(slot[2] for slot in live)

    @property
    def first_attempts(self) -> int:
        """Calls (first attempts) deposited in the current window."""
        return self._totals()[0]

    @property
    def extra_attempts(self) -> int:
        """Retries and hedges withdrawn in the current window."""
        return self._totals()[1]

    @property
    def available(self) -> float:
        """How many extra attempts may still be made now (may be fractional or negative)."""
        firsts, extras = self._totals()
        return self.ratio * firsts + self.min_per_second * self.window_seconds - extras

    def deposit(self) -> None:
        """Record a call's first attempt."""
        # Every call comes here: ``_slot`` written out, one call fewer.
        position = self.clock() * self.buckets / self.window_seconds
        number = int(position) if position >= 0 else math.floor(position)
        slot = self._slots[number % self.buckets]
        if slot[0] != number:
            slot[:] = [number, 0, 0]
        slot[1] += 1

    def try_withdraw(self) -> bool:
        """Take one extra attempt from the budget; ``False`` (and nothing taken) when exhausted."""
        if self.available < 1:
            return False
        self._slot()[2] += 1
        return True
