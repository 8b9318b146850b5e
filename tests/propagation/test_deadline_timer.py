"""``DeadlineTimer``: many deadlines, one loop timer, and ``asyncio.timeout``'s cancellation protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from aio_pipeline import Deadline, DeadlineExceededError, detached
from aio_pipeline.propagation import DeadlineTimer, covered, covering

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


async def bounded(timer: DeadlineTimer, at: float, body: Callable[[], Awaitable[str]]) -> str:
    """What ``ClientDeadline`` does around the rest of the call."""
    scope = timer.enter(Deadline(at), asyncio.get_running_loop())
    try:
        return await body()
    except asyncio.CancelledError as error:
        if timer.leave(scope) and scope.task.uncancel() <= scope.cancelling:
            raise DeadlineExceededError("the call's deadline passed") from error
        raise
    finally:
        if timer.leave(scope):
            scope.task.uncancel()


async def sleeper(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


async def test_the_task_is_cut_at_its_deadline_and_the_owner_reports_it() -> None:
    loop, timer = asyncio.get_running_loop(), DeadlineTimer()
    started = loop.time()
    with pytest.raises(DeadlineExceededError):
        await bounded(timer, started + 2, lambda: sleeper(10))
    assert loop.time() - started == pytest.approx(2)
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0  # the cancellation was taken back


async def test_a_body_that_ends_in_time_is_untouched() -> None:
    loop, timer = asyncio.get_running_loop(), DeadlineTimer()
    assert await bounded(timer, loop.time() + 2, lambda: sleeper(1)) == "done"
    await asyncio.sleep(5)  # the timer fires for nobody: nothing is cancelled later
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_concurrent_calls_each_end_at_their_own_deadline() -> None:
    loop, timer = asyncio.get_running_loop(), DeadlineTimer()
    started = loop.time()
    ended: dict[str, float] = {}

    async def call(name: str, deadline: float, takes: float) -> str:
        try:
            return await bounded(timer, started + deadline, lambda: sleeper(takes))
        except DeadlineExceededError:
            return "expired"
        finally:
            ended[name] = loop.time() - started

    # Entered latest-first, so the timer is re-armed for each earlier deadline.
    results = await asyncio.gather(call("c", 3, 10), call("b", 2, 1), call("a", 1, 10), call("d", 4, 3.5))
    assert results == ["expired", "done", "expired", "done"]
    assert ended == pytest.approx({"a": 1, "b": 1, "c": 3, "d": 3.5})


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    loop, timer = asyncio.get_running_loop(), DeadlineTimer()
    task = asyncio.create_task(bounded(timer, loop.time() + 5, lambda: sleeper(10)))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_outer_cancellation_at_the_deadline_is_not_taken_for_ours() -> None:
    """Both cancel the task at once: ``uncancel()`` shows a second canceller, so it propagates."""
    loop, timer = asyncio.get_running_loop(), DeadlineTimer()
    at = loop.time() + 2
    task = asyncio.create_task(bounded(timer, at, lambda: sleeper(10)))
    loop.call_at(at, task.cancel)
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_nested_scopes_the_inner_expiring_first() -> None:
    loop, timer = asyncio.get_running_loop(), DeadlineTimer()
    started = loop.time()

    async def inner() -> str:
        try:
            return await bounded(timer, started + 1, lambda: sleeper(10))
        except DeadlineExceededError:
            return await sleeper(0.5)  # the outer call goes on after its inner call's expiry

    assert await bounded(timer, started + 5, inner) == "done"
    assert loop.time() - started == pytest.approx(1.5)


async def test_nested_scopes_expiring_together_each_report_once() -> None:
    loop, timer = asyncio.get_running_loop(), DeadlineTimer()
    at = loop.time() + 1
    raised: list[str] = []

    async def inner() -> str:
        try:
            return await bounded(timer, at, lambda: sleeper(10))
        except BaseException as error:
            raised.append(type(error).__name__)
            raise

    with pytest.raises(DeadlineExceededError):
        await bounded(timer, at, inner)
    # Two cancellations arrived at once: the inner scope sees one that is not its own and lets it
    # through; the outer one takes the last and reports it.
    assert raised == ["CancelledError"]


async def test_an_expiry_the_body_swallows_is_taken_back() -> None:
    loop, timer = asyncio.get_running_loop(), DeadlineTimer()

    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "swallowed"
        return "slept"

    assert await bounded(timer, loop.time() + 1, stubborn) == "swallowed"
    current = asyncio.current_task()
    assert current is not None and current.cancelling() == 0


async def test_covered_inside_and_in_the_tasks_it_starts_not_after_nor_when_detached() -> None:
    loop, timer = asyncio.get_running_loop(), DeadlineTimer()
    deadline = Deadline(loop.time() + 2)
    assert covering() is None
    seen: list[bool] = []

    async def in_a_task_of_its_own() -> tuple[bool, float | None]:
        scope = covering()
        return covered(deadline), None if scope is None else scope.at

    async def body() -> str:
        seen.append(covered(deadline))  # this deadline: enforced already
        seen.append(covered(Deadline(deadline.deadline_at + 1)))  # a later one: too
        seen.append(covered(Deadline(deadline.deadline_at - 1)))  # an earlier one: no
        # A task started inside (a hedge, in its TaskGroup) ends with the call: covered too.
        assert await asyncio.create_task(in_a_task_of_its_own()) == (True, deadline.deadline_at)
        with detached():  # background work may outlive the call: on its own
            assert await asyncio.create_task(in_a_task_of_its_own()) == (False, None)
        return "done"

    scope = timer.enter(deadline, loop)
    try:
        assert await body() == "done"
    finally:
        timer.leave(scope)
    assert seen == [True, True, False]
    assert covering() is None
    assert not covered(deadline)


async def test_the_heap_stays_bounded_by_the_live_scopes() -> None:
    loop, timer = asyncio.get_running_loop(), DeadlineTimer()
    for _ in range(10_000):  # calls that end in time, one after the other, all on a 20 s deadline
        await bounded(timer, loop.time() + 20, lambda: asyncio.sleep(0, result="done"))
    assert len(timer) <= 2 * 0 + 33


async def test_it_follows_a_new_event_loop() -> None:
    timer = DeadlineTimer()

    def run_in_a_loop_of_its_own() -> str:
        async def main() -> str:
            loop = asyncio.get_running_loop()  # a call ending in time leaves a timer armed there
            return await bounded(timer, loop.time() + 20, lambda: asyncio.sleep(0, result="done"))

        return asyncio.run(main())

    # The timer served another loop first (in a thread, so that loop is a real, separate one).
    assert await asyncio.to_thread(run_in_a_loop_of_its_own) == "done"
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeadlineExceededError):
        await bounded(timer, started + 2, lambda: sleeper(10))
    assert loop.time() - started == pytest.approx(2)
