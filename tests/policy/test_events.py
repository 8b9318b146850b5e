"""Events: hooks from the strategy and from the request, failing hooks, and run_attempt."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aio_pipeline import ConnectError, Deadline, Request, RequestAttemptDelaysProvider, Response, get
from aio_pipeline.extensions import EVENT_HOOKS, event_hooks_for, with_event_hook
from aio_pipeline.policy import (
    AttemptFinished,
    AttemptStarted,
    DefaultResponseClassifier,
    Emitter,
    Event,
    ResponseClassifier,
    ResponseVerdict,
    RetryScheduled,
    run_attempt,
)


def test_emitter_calls_the_strategys_hooks_then_the_requests() -> None:
    seen: list[str] = []
    request = with_event_hook(
        with_event_hook(get("x"), lambda e: seen.append("request 1")), lambda e: seen.append("request 2")
    )
    emitter = Emitter(event_hooks_for([lambda e: seen.append("own")], request))
    assert emitter
    emitter.emit(RetryScheduled(request, 2, 0.1))
    assert seen == ["own", "request 1", "request 2"]
    assert len(EVENT_HOOKS.get(request) or ()) == 2


def test_an_emitter_without_hooks_is_false() -> None:
    assert not Emitter(())


def test_a_failing_hook_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("metrics backend down")

    emitter = Emitter([broken, seen.append])
    with caplog.at_level(logging.ERROR, logger="aio_pipeline.events"):
        emitter.emit(RetryScheduled(get("x"), 2, 0.1))
    assert len(seen) == 1
    assert "RetryScheduled" in caplog.text and "metrics backend down" in caplog.text


def test_events_are_frozen() -> None:
    event = RetryScheduled(get("x"), 2, 0.1)
    with pytest.raises(AttributeError):
        event.delay = 1.0  # type: ignore[misc]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_run_attempt_reports_start_and_end_with_the_verdict() -> None:
    seen: list[Event] = []

    async def slow(request: Request) -> Response:
        await asyncio.sleep(0.25)
        return Response(503)

    outcome = await run_attempt(slow, get("x"), DefaultResponseClassifier(), Emitter([seen.append]))
    assert outcome.verdict is ResponseVerdict.REJECT and outcome.elapsed == pytest.approx(0.25)
    started, finished = seen
    assert isinstance(started, AttemptStarted) and isinstance(finished, AttemptFinished)
    assert finished.status == 503 and finished.elapsed == pytest.approx(0.25) and not finished.cancelled


@pytest.mark.asyncio
async def test_run_attempt_catches_exceptions_as_outcomes() -> None:
    error = ConnectError("refused")

    async def refused(request: Request) -> Response:
        raise error

    seen: list[Event] = []
    outcome = await run_attempt(refused, get("x"), DefaultResponseClassifier(), Emitter([seen.append]))
    assert outcome.result is error and outcome.verdict is ResponseVerdict.REJECT
    assert isinstance(seen[1], AttemptFinished) and seen[1].result is error and seen[1].status is None


@pytest.mark.asyncio
async def test_run_attempt_lets_cancellation_through_and_reports_it() -> None:
    seen: list[Event] = []

    async def hangs(request: Request) -> Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    task = asyncio.create_task(run_attempt(hangs, get("x"), DefaultResponseClassifier(), Emitter([seen.append])))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    finished = seen[-1]
    assert isinstance(finished, AttemptFinished) and finished.cancelled and finished.verdict is None


@pytest.mark.asyncio
async def test_a_broken_classifier_does_not_leak_the_response() -> None:
    response = Response(200)

    class Broken(ResponseClassifier):
        def classify(self, response: Response) -> ResponseVerdict:
            raise ZeroDivisionError

    async def answer(request: Request) -> Response:
        return response

    with pytest.raises(ZeroDivisionError):
        await run_attempt(answer, get("x"), Broken(), Emitter(()))
    assert response.closed


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_run_attempt_tells_the_latency_tracker_what_latency_sample_rules() -> None:
    class Recorder(RequestAttemptDelaysProvider):
        def __init__(self) -> None:
            self.seen: list[float] = []

        def __call__(self, request: Request, attempt: int) -> float:
            return 0.0

        def observe(self, request: Request, seconds: float) -> None:
            self.seen.append(round(seconds, 6))

    async def answers(request: Request) -> Response:
        await asyncio.sleep(0.25)
        return Response(200)

    async def hangs(request: Request) -> Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    recorder = Recorder()
    classifier, events = DefaultResponseClassifier(), Emitter(())
    await run_attempt(answers, get("x"), classifier, events, recorder)
    deadline = Deadline.from_timeout(0.5)
    for cut_after in (0.5, 0.1):  # at its deadline (a sample), then long before it (none)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(cut_after):
                await run_attempt(hangs, get("x").replace(deadline=deadline), classifier, events, recorder)
        deadline = Deadline.from_timeout(0.5)
    assert recorder.seen == [0.25, 0.5]
