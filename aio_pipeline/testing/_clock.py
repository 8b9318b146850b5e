"""An event loop on a virtual clock: the conformance check's own loop.

Every wait of the loop for its next timer (a sleep, a timeout, a deadline) takes no real time:
when nothing is ready the clock jumps to that timer, as trio's ``MockClock(autojump_threshold=0)``
does. Real time is waited for only when something outside the loop may wake it: work running in a
thread (``run_in_executor``, so ``asyncio.to_thread`` too) or nothing scheduled at all; the clock
then moves by the real time that passed. Built from public parts only: a ``SelectorEventLoop``
given a selector of ours, and its ``time()``.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from typing import Any, TypeVar, TypeVarTuple

__all__ = ["VirtualClockLoop"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class _Clock:
    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = 0.0


class _VirtualSelector(selectors.BaseSelector):
    """A real selector whose waits are virtual; see the module docstring."""

    def __init__(self, clock: _Clock, threads_busy: Callable[[], bool]) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock
        self._threads_busy = threads_busy

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)  # what is ready now goes first, whatever the clock says
        if ready or (timeout is not None and timeout <= 0):
            return ready
        if timeout is None or self._threads_busy():
            # Only the outside world can wake the loop: wait for it for real, and let the clock
            # follow the real time that passed.
            started = time.monotonic()
            ready = self._real.select(timeout)
            self._clock.now += time.monotonic() - started if ready or timeout is None else timeout
            return ready
        self._clock.now += timeout  # the next timer is due: jump to it
        return []

    def close(self) -> None:
        self._real.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """A ``SelectorEventLoop`` whose ``time()`` is virtual seconds from 0.0 (see the module)."""

    def __init__(self) -> None:
        self._virtual = _Clock()
        self._in_threads: set[asyncio.Future[Any]] = set()
        super().__init__(_VirtualSelector(self._virtual, lambda: bool(self._in_threads)))

    def time(self) -> float:
        return self._virtual.now

    def run_in_executor(self, executor: Executor | None, func: Callable[[*Ts], T], *args: *Ts) -> asyncio.Future[T]:
        future = super().run_in_executor(executor, func, *args)
        self._in_threads.add(future)
        future.add_done_callback(self._in_threads.discard)
        return future
