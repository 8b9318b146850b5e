"""aio-request's remaining public names: the circuit breaker's metrics window, the deprecated
no-op metrics provider, and ``AioHttpDnsResolver``."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp.abc import AbstractResolver, ResolveResult

from ..chain import Handler, Middleware
from ..http import Request, Response
from ..propagation import loop_time

__all__ = [
    "NOOP_METRICS_PROVIDER",
    "AioHttpDnsResolver",
    "CircuitBreakerMetrics",
    "CircuitBreakerMetricsSnapshot",
    "NoopMetricsProvider",
    "RollingCircuitBreakerMetrics",
]


@dataclass(slots=True, kw_only=True)
class CircuitBreakerMetricsSnapshot:
    """Successes and failures counted since ``started_at`` (seconds, monotonic clock)."""

    started_at: float
    successes: int = 0
    failures: int = 0


class CircuitBreakerMetrics(abc.ABC):
    """aio-request's breaker counters: count outcomes, reset, collect a snapshot."""

    __slots__ = ()

    @abc.abstractmethod
    def increment_successes(self) -> None: ...

    @abc.abstractmethod
    def increment_failures(self) -> None: ...

    @abc.abstractmethod
    def reset(self) -> None: ...

    @abc.abstractmethod
    def collect(self) -> CircuitBreakerMetricsSnapshot: ...


class RollingCircuitBreakerMetrics(CircuitBreakerMetrics):
    """Counts successes and failures over the last ``sampling_duration`` seconds.

    The counts are kept in buckets that start when needed and drop out once older than the
    duration. ``DefaultCircuitBreaker`` keeps its own window; this class is for code that uses
    aio-request's directly.

    Options:
        sampling_duration: the window, seconds, > 0; required.
        windows_count: the buckets it is counted in, a count > 0 (each ``sampling_duration /
            windows_count`` seconds wide); required.
        clock: ``() -> seconds``, monotonic; default ``None``: the running loop's.
    """

    __slots__ = ("_buckets", "_clock", "_sampling_duration", "_width")

    def __init__(
        self, sampling_duration: float, windows_count: int, *, clock: Callable[[], float] | None = None
    ) -> None:
        if not sampling_duration > 0 or not windows_count > 0:
            raise ValueError(
                f"sampling_duration and windows_count must be > 0, got {sampling_duration!r}, {windows_count!r}"
            )
        self._sampling_duration = sampling_duration
        self._width = sampling_duration / windows_count
        self._buckets: deque[CircuitBreakerMetricsSnapshot] = deque()
        self._clock = clock or loop_time

    def _current(self) -> CircuitBreakerMetricsSnapshot:
        now = self._clock()
        buckets = self._buckets
        if not buckets or now - buckets[-1].started_at >= self._width:
            buckets.append(CircuitBreakerMetricsSnapshot(started_at=now))
        while now - buckets[0].started_at >= self._sampling_duration:
            buckets.popleft()
        return buckets[-1]

    def increment_successes(self) -> None:
        self._current().successes += 1

    def increment_failures(self) -> None:
        self._current().failures += 1

    def reset(self) -> None:
        self._buckets.clear()

    def collect(self) -> CircuitBreakerMetricsSnapshot:
        self._current()
        return CircuitBreakerMetricsSnapshot(
            started_at=self._buckets[0].started_at,
            successes=sum(bucket.successes for bucket in self._buckets),
            failures=sum(bucket.failures for bucket in self._buckets),
        )


async def _pass_through(request: Any, call_next: Callable[[Any], Any], /) -> Any:
    return await call_next(request)


class NoopMetricsProvider:
    """A metrics provider that records nothing (aio-request's deprecated ``metrics_provider=``
    placeholder). ``setup()`` adds nothing to the pipeline for it."""

    __slots__ = ()

    def client_call_middleware(self) -> Middleware[Request, Response]:
        return _pass_through

    def client_attempt_middleware(self) -> Middleware[Request, Response]:
        return _pass_through

    def client_event_hook(self) -> Callable[[object], None]:
        return lambda event: None

    def circuit_breaker_hook(self) -> Callable[[object], None]:
        return lambda change: None

    def server_middleware(self) -> Callable[[Any, Handler[Any, Any]], Any]:
        return _pass_through


NOOP_METRICS_PROVIDER = NoopMetricsProvider()


class AioHttpDnsResolver(AbstractResolver):
    """Wraps an aiohttp ``resolver``: answers from a cache, which a background task refreshes.

    A host whose refresh fails ``max_failures`` times in a row is dropped, and resolved afresh
    when next asked. The task starts with the first look-up (so it may be built outside a running
    loop) and stops in ``close()``, which closes ``resolver`` too.

    Options:
        resolver: the aiohttp resolver asked on a miss and on every refresh; required.
        interval: seconds between refreshes, > 0; default 30.
        max_failures: refreshes failed in a row after which a host is dropped, a count > 0;
            default 3.
    """

    def __init__(self, resolver: AbstractResolver, *, interval: float = 30, max_failures: float = 3) -> None:
        if not interval > 0 or not max_failures > 0:
            raise ValueError(f"interval and max_failures must be > 0, got {interval!r}, {max_failures!r}")
        self._resolver = resolver
        self._interval = interval
        self._max_failures = max_failures
        self._results: dict[tuple[str, int, socket.AddressFamily], list[ResolveResult]] = {}
        self._failures: dict[tuple[str, int, socket.AddressFamily], int] = {}
        self._task: asyncio.Task[None] | None = None

    def resolve_no_wait(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult] | None:
        """The cached addresses of ``host``, ``None`` when none are cached."""
        return self._results.get((host, port, family))

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        key = (host, port, family)
        cached = self._results.get(key)
        if cached is not None:
            return cached
        result = await self._resolver.resolve(host, port, family)
        self._results[key] = result
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._refresh_forever())
        return result

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            for key in list(self._results):  # a copy: look-ups may add keys meanwhile
                try:
                    self._results[key] = await self._resolver.resolve(*key)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    failures = self._failures.get(key, 0) + 1
                    if failures >= self._max_failures:
                        self._results.pop(key, None)
                        self._failures.pop(key, None)
                    else:
                        self._failures[key] = failures
                else:
                    self._failures.pop(key, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._resolver.close()
