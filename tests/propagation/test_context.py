"""The inherited context: get_context, set_context overrides and restores, detached clears."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from aio_pipeline import Deadline, Priority
from aio_pipeline.propagation import Context, detached, get_context, set_context


def test_outside_any_request_nothing_is_inherited() -> None:
    assert get_context() == Context(deadline=None, priority=None)


@pytest.mark.asyncio
async def test_set_context_overrides_for_the_block_and_restores_after() -> None:
    deadline = Deadline.from_timeout(2)
    with set_context(deadline=deadline, priority=Priority.HIGH) as inside:
        assert inside is get_context()
        assert get_context() == Context(deadline=deadline, priority=Priority.HIGH)
    assert get_context() == Context()


@pytest.mark.asyncio
async def test_an_argument_left_out_keeps_the_inherited_value() -> None:
    deadline = Deadline.from_timeout(2)
    with set_context(deadline=deadline, priority=Priority.LOW):
        with set_context(priority=Priority.HIGH):
            assert get_context() == Context(deadline=deadline, priority=Priority.HIGH)
        with set_context(deadline=None):  # None clears, unlike leaving it out
            assert get_context() == Context(deadline=None, priority=Priority.LOW)
        assert get_context() == Context(deadline=deadline, priority=Priority.LOW)


@pytest.mark.asyncio
async def test_an_override_may_be_later_than_the_inherited_deadline() -> None:
    # set_context is a deliberate choice, unlike a per-call deadline, which can only shorten.
    short, long = Deadline.from_timeout(1), Deadline.from_timeout(60)
    with set_context(deadline=short), set_context(deadline=long):
        assert get_context().deadline is long


@pytest.mark.asyncio
async def test_kept_values_are_read_when_entering_not_when_created() -> None:
    keep_deadline = set_context(priority=Priority.HIGH)
    deadline = Deadline.from_timeout(3)
    with set_context(deadline=deadline), keep_deadline:
        assert get_context() == Context(deadline=deadline, priority=Priority.HIGH)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_restored_on_exception_and_on_cancellation() -> None:
    with pytest.raises(RuntimeError), set_context(priority=Priority.HIGH):
        raise RuntimeError("boom")
    assert get_context().priority is None

    started = asyncio.Event()
    seen_after: list[Context] = []

    async def worker() -> None:
        try:
            with set_context(priority=Priority.LOW):
                started.set()
                await asyncio.sleep(3600)
        finally:
            seen_after.append(get_context())

    task = asyncio.create_task(worker())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen_after == [Context()]


@pytest.mark.asyncio
async def test_a_task_started_inside_inherits_the_context() -> None:
    deadline = Deadline.from_timeout(5)
    with set_context(deadline=deadline, priority=Priority.HIGH):
        child = asyncio.create_task(_read_context())
    assert await child == Context(deadline=deadline, priority=Priority.HIGH)


@pytest.mark.asyncio
async def test_detached_starts_background_work_without_the_request_context() -> None:
    with set_context(deadline=Deadline.from_timeout(0.5), priority=Priority.HIGH):
        with detached():
            assert get_context() == Context()
            background = asyncio.create_task(_read_context())
        inherited = asyncio.create_task(_read_context())
        assert get_context().priority is Priority.HIGH
    assert await background == Context()
    assert (await inherited).priority is Priority.HIGH


@pytest.mark.asyncio
async def test_detached_is_also_a_context_for_create_task() -> None:
    # The same clearing works for a task's explicit context (create_task(context=...)).
    with set_context(priority=Priority.LOW):
        with detached():
            context = contextvars.copy_context()
        task = asyncio.create_task(_read_context(), context=context)
    assert await task == Context()


@pytest.mark.parametrize(
    ("arguments", "name"),
    [({"deadline": 2.0}, "deadline"), ({"priority": "high"}, "priority")],
)
def test_wrong_types_are_refused_at_once(arguments: dict[str, object], name: str) -> None:
    with pytest.raises(TypeError, match=name):
        set_context(**arguments)  # type: ignore[arg-type]


async def _read_context() -> Context:
    return get_context()
