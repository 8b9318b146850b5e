"""``VirtualClockLoop``, the conformance check's own loop: waits for timers take no real time;
work in a thread, or an outside wake-up, is waited for for real."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aio_pipeline.testing._clock import VirtualClockLoop

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(main())


def test_the_clock_starts_at_zero_and_jumps_to_each_timer() -> None:
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        moments = [loop.time()]
        await asyncio.sleep(3600)
        moments.append(loop.time())
        try:
            async with asyncio.timeout(2.5):
                await asyncio.sleep(100)
        except TimeoutError:
            moments.append(loop.time())
        return moments

    assert run(main) == [0.0, 3600.0, 3602.5]


def test_timers_fire_in_order_of_their_virtual_time() -> None:
    async def main() -> list[str]:
        fired: list[str] = []

        async def after(seconds: float, name: str) -> None:
            await asyncio.sleep(seconds)
            fired.append(name)

        await asyncio.gather(after(3, "third"), after(1, "first"), after(2, "second"))
        return fired

    assert run(main) == ["first", "second", "third"]


def test_work_in_a_thread_is_waited_for_without_jumping_to_a_later_timer() -> None:
    async def main() -> tuple[str, float]:
        loop = asyncio.get_running_loop()
        far = asyncio.ensure_future(asyncio.sleep(1000))  # a timer the clock must not jump to meanwhile
        release = threading.Event()
        threading.Timer(0.01, release.set).start()
        answer = await asyncio.to_thread(lambda: "done" if release.wait() else "never")
        at = loop.time()
        far.cancel()
        return answer, at

    answer, at = run(main)
    assert answer == "done"
    assert 0.0 < at < 1000.0  # moved by the real time the thread took, not by the far timer


def test_with_nothing_scheduled_it_waits_for_a_wake_up_from_outside() -> None:
    async def main() -> str:
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[str] = loop.create_future()

        def from_outside() -> None:
            loop.call_soon_threadsafe(woken.set_result, "woken")

        threading.Timer(0.01, from_outside).start()
        return await woken

    assert run(main) == "woken"
