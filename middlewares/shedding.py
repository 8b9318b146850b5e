"""``LoadShedding``: a priority-aware concurrency limit for the server side.

When the service is saturated it sheds LOW first, then NORMAL, and keeps ``high_reserve`` of
its capacity for HIGH only. A shed request is refused with ``OverloadedError`` before its
handler runs; the server adapter answers 503 with ``Retry-After`` and without
``X-Do-Not-Retry``, so a client may retry on another replica.

    capacity:  |<-------------- max_concurrency -------------->|
    LOW        |<-- 1 - high_reserve - normal_reserve -->|
    NORMAL     |<--------- 1 - high_reserve -------->|
    HIGH       |<------------------ all ------------------->|

With ``max_wait`` > 0 a request that finds its share full may queue (HIGH first, then by
arrival) for up to ``max_wait`` seconds, but a request whose remaining deadline is shorter than
the wait it would face is shed at once: it could not finish anyway. Place it after the deadline
and priority middlewares, which put both into the context it reads.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from aio_pipeline.errors import OverloadedError
from aio_pipeline.propagation import CONTEXT, Priority, loop_clock

__all__ = ["LoadShedding"]

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")

_RANK = {Priority.HIGH: 0, Priority.NORMAL: 1, Priority.LOW: 2}


@dataclass(eq=False)
class LoadShedding:
    """At most ``max_concurrency`` handlers at once, shared out by priority.

    Options:
        max_concurrency: handlers running at once, a count > 0; required.
        high_reserve: the share of capacity only HIGH may use, a fraction in [0, 1); default 0.2.
        normal_reserve: the further share LOW may not use, a fraction in [0, 1), with
            ``high_reserve`` below 1 in all; default 0.2 (LOW gets 60%).
        max_wait: seconds a request may queue for a slot, >= 0; default 0 (shed at once).
        min_retry_after: the least ``Retry-After`` sent with a shed request, seconds, >= 0;
            default 1.

    The state (``in_flight``, ``waiting``) is per instance: one instance per server.
    """

    #: never reads the exchange (``aiohttp_server_middleware``): a stack of such steps opens none
    observes_exchange: ClassVar[bool] = False

    max_concurrency: int
    high_reserve: float = 0.2
    normal_reserve: float = 0.2
    max_wait: float = 0.0
    min_retry_after: float = 1.0
    in_flight: int = field(default=0, init=False)
    _limits: dict[Priority, int] = field(init=False, repr=False)
    _waiters: list[tuple[int, int, Priority, asyncio.Future[None]]] = field(
        default_factory=list, init=False, repr=False
    )
    _order: itertools.count[int] = field(default_factory=itertools.count, init=False, repr=False)
    _mean_seconds: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_concurrency, bool)
            or not isinstance(self.max_concurrency, int)
            or self.max_concurrency < 1
        ):
            raise ValueError(f"max_concurrency must be an int >= 1, got {self.max_concurrency!r}")
        for name in ("high_reserve", "normal_reserve"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if self.high_reserve + self.normal_reserve >= 1:
            raise ValueError("high_reserve + normal_reserve must be < 1, so that LOW gets some capacity")
        for name in ("max_wait", "min_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number of seconds >= 0, got {value!r}")
        share = {Priority.HIGH: 1.0, Priority.NORMAL: 1 - self.high_reserve}
        share[Priority.LOW] = share[Priority.NORMAL] - self.normal_reserve
        self._limits = {p: max(1, math.floor(self.max_concurrency * s + 1e-9)) for p, s in share.items()}

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return sum(1 for *_, future in self._waiters if not future.done())

    def limit(self, priority: Priority) -> int:
        """How many handlers may run at once when a request of ``priority`` is admitted."""
        return self._limits[priority]

    def link(self, call_next: Callable[[RequestT], Awaitable[ResponseT]]) -> Callable[[RequestT], Awaitable[ResponseT]]:
        """The middleware with ``call_next`` bound (see ``compose``)."""

        async def shedding(request: RequestT) -> ResponseT:
            context = CONTEXT.get()
            priority = context.priority or Priority.NORMAL
            # The waiters are looked at only when there are some: nobody queues while there is room.
            if self.in_flight < self._limits[priority] and not (self._waiters and self._outranked(priority)):
                self.in_flight += 1
            else:
                left = context.deadline.timeout if context.deadline is not None else math.inf
                await self._queue(priority, left, request)
            clock = loop_clock()
            started = clock()
            try:
                return await call_next(request)
            finally:
                # A running mean of handler time (seconds) estimates how long a queued request waits.
                self._mean_seconds += 0.1 * ((clock() - started) - self._mean_seconds)
                self._release()

        return shedding

    def __call__(
        self, request: RequestT, call_next: Callable[[RequestT], Awaitable[ResponseT]], /
    ) -> Awaitable[ResponseT]:
        return self.link(call_next)(request)

    def _outranked(self, priority: Priority) -> bool:
        """Whether someone queued earlier with at least this priority should go first."""
        return any(rank <= _RANK[priority] and not future.done() for rank, _, _, future in self._waiters)

    def _expected_wait(self) -> float:
        return self._mean_seconds * (self.waiting + 1) / self.max_concurrency

    def _shed(self, request: object, why: str) -> OverloadedError:
        retry_after = max(self.min_retry_after, self._expected_wait())
        return OverloadedError(f"overloaded: {why}", request=request, retry_after=retry_after)

    async def _queue(self, priority: Priority, left: float, request: object) -> None:
        if self.max_wait <= 0:
            raise self._shed(request, f"{self.in_flight} running, {priority} may use {self._limits[priority]}")
        if left < self._expected_wait():
            raise self._shed(request, "the deadline is shorter than the expected wait")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (_RANK[priority], next(self._order), priority, future))
        try:
            async with asyncio.timeout(min(self.max_wait, left)):
                await future
        except BaseException as error:
            if future.done() and not future.cancelled():
                self._release()  # a slot was handed over just as we gave up: pass it on
            future.cancel()  # marks this waiter as gone for _release
            if isinstance(error, TimeoutError):
                raise self._shed(request, f"no slot within {min(self.max_wait, left):.3f}s") from None
            raise

    def _release(self) -> None:
        self.in_flight -= 1
        while self._waiters:
            _, _, priority, future = self._waiters[0]
            if future.done():
                heapq.heappop(self._waiters)
                continue
            if self.in_flight >= self._limits[priority]:
                return  # the best waiter cannot start, and lower priorities have lower limits
            heapq.heappop(self._waiters)
            self.in_flight += 1
            future.set_result(None)
