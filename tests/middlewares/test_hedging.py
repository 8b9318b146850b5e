"""ParallelStrategy on a scripted transport, under a virtual clock: when hedges start, who wins,
how losers are cancelled and closed, Retry-After, the budget, idempotency, deadlines, events."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable

import pytest

from aio_pipeline import (
    CircuitOpenError,
    ConnectError,
    Deadline,
    DeadlineExceededError,
    Pipeline,
    Priority,
    Request,
    Response,
    TransportError,
    get,
    post,
)
from aio_pipeline.middlewares import SystemHeaders
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.hedging import ParallelStrategy, parallel_strategy
from aio_pipeline.policy import (
    AttemptFinished,
    BudgetExhausted,
    DefaultResponseClassifier,
    Event,
    HedgeStarted,
    PercentileBasedRequestAttemptDelaysProvider,
    ResponseVerdict,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryBudget,
    RetryScheduled,
    constant_delays,
    exponential_backoff_delays,
    linear_delays,
)
from aio_pipeline.testing import FakeTransport, Step

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

HANG = 3600.0


def now() -> float:
    return asyncio.get_running_loop().time()


class Tracked:
    """Steps that record when they are cancelled and when their responses are closed."""

    def __init__(self) -> None:
        self.cancelled: list[int] = []
        self.closed: list[int] = []

    def response(self, status: int, tag: int, headers: dict[str, str] | None = None) -> Response:
        async def on_close() -> None:
            self.closed.append(tag)

        return Response(status, headers, on_close=on_close)

    def after(self, seconds: float, status: int, tag: int, headers: dict[str, str] | None = None) -> Step:
        async def step(request: Request) -> Response:
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                self.cancelled.append(tag)
                raise
            return self.response(status, tag, headers)

        return step

    def raises(self, seconds: float, error: Exception, tag: int) -> Step:
        async def step(request: Request) -> Response:
            try:
                await asyncio.sleep(seconds)
            except asyncio.CancelledError:
                self.cancelled.append(tag)
                raise
            raise error

        return step


async def run(
    strategy: ParallelStrategy, *steps: Step, request: Request | None = None
) -> tuple[Response, FakeTransport]:
    transport = FakeTransport(steps)
    response = await Pipeline(transport, [strategy])(request or get("x"))
    return response, transport


async def send(pipeline: Pipeline, request: Request) -> Response:
    return await pipeline(request)


def offsets(transport: FakeTransport, start: float) -> list[float]:
    return [round(sent.at - start, 6) for sent in transport.sent]


def assert_no_tasks_left() -> None:
    assert asyncio.all_tasks() == {asyncio.current_task()}


# --- when attempts start -----------------------------------------------------------------------


async def test_constant_delays_start_a_hedge_every_delay_while_none_has_answered() -> None:
    t, start = Tracked(), now()
    response, transport = await run(
        ParallelStrategy(3, constant_delays(delay=0.1)),
        t.after(HANG, 200, 1),
        t.after(HANG, 200, 2),
        t.after(0.05, 200, 3),
    )
    assert offsets(transport, start) == [0.0, 0.1, 0.2]
    assert now() - start == pytest.approx(0.25)
    assert response.status == 200 and t.closed == [] and sorted(t.cancelled) == [1, 2]
    assert_no_tasks_left()


async def test_linear_delays_are_measured_between_attempts() -> None:
    start = now()
    provider = linear_delays(min_delay_seconds=0.1, delay_multiplier=0.1, jitter=0.0)
    t = Tracked()
    _, transport = await run(
        ParallelStrategy(3, provider), t.after(HANG, 200, 1), t.after(HANG, 200, 2), t.after(0, 200, 3)
    )
    assert offsets(transport, start) == [0.0, 0.2, 0.5]  # 0.2 after the first, 0.3 after the second


async def test_exponential_delays() -> None:
    start, t = now(), Tracked()
    provider = exponential_backoff_delays(base_delay_seconds=0.1, multiplier=2.0, jitter=0.0)
    _, transport = await run(
        ParallelStrategy(3, provider), t.after(HANG, 200, 1), t.after(HANG, 200, 2), t.after(0, 200, 3)
    )
    assert offsets(transport, start) == [0.0, 0.1, 0.3]


async def test_no_hedge_when_the_first_attempt_answers_in_time() -> None:
    start, t = now(), Tracked()
    response, transport = await run(ParallelStrategy(3, constant_delays(delay=0.1)), t.after(0.09, 200, 1))
    assert response.status == 200 and len(transport.sent) == 1 and now() - start == pytest.approx(0.09)


async def test_percentile_delays_hedge_at_observed_latency_and_count_cancelled_attempts() -> None:
    provider = PercentileBasedRequestAttemptDelaysProvider(percentile=0.5, min_delay_seconds=0.001, min_samples=5)
    strategy = ParallelStrategy(2, provider)
    t = Tracked()
    for _ in range(5):
        await run(strategy, t.after(0.02, 200, 0))
    assert provider(get("x"), 1) == pytest.approx(0.02)
    # Attempt 1 is slow; the hedge at 0.02 answers in 0.02. Attempt 1, cancelled at 0.04, is
    # recorded as "at least 0.04", the hedge as 0.02: neither pulls the median below what it was.
    start = now()
    _, transport = await run(strategy, t.after(HANG, 200, 1), t.after(0.02, 200, 2))
    assert offsets(transport, start) == [0.0, 0.02]
    assert provider.sample_count(get("x")) == 7


async def test_a_hedge_that_was_started_after_the_winner_is_not_counted_as_slow() -> None:
    provider = PercentileBasedRequestAttemptDelaysProvider(percentile=0.5, min_delay_seconds=0.001, min_samples=1)
    provider.observe(get("x"), 0.01)
    t = Tracked()
    await run(ParallelStrategy(2, provider), t.after(0.015, 200, 1), t.after(HANG, 200, 2))
    assert provider.sample_count(get("x")) == 2  # the winner; not the hedge, cancelled after 5 ms


# --- who wins ----------------------------------------------------------------------------------


async def test_a_fast_error_does_not_win_and_starts_the_next_attempt_at_once() -> None:
    start, t = now(), Tracked()
    response, transport = await run(
        ParallelStrategy(3, constant_delays(delay=0.1)),
        t.after(0.5, 200, 1),
        t.after(0.01, 503, 2),
        t.after(HANG, 200, 3),
    )
    assert offsets(transport, start) == [0.0, 0.1, 0.11]
    assert response.status == 200 and now() - start == pytest.approx(0.5)
    assert t.closed == [2] and t.cancelled == [3]


async def test_a_sibling_that_raises_does_not_win_or_break_the_call() -> None:
    t = Tracked()
    response, _ = await run(
        ParallelStrategy(3, constant_delays(delay=0.1)),
        t.after(0.3, 200, 1),
        t.raises(0.01, TransportError("reset"), 2),
        t.raises(0.01, ConnectError("refused"), 3),
    )
    assert response.status == 200 and t.cancelled == []
    assert_no_tasks_left()


async def test_a_final_error_on_a_hedge_stops_new_attempts_but_not_the_running_one() -> None:
    t = Tracked()
    response, transport = await run(
        ParallelStrategy(3, constant_delays(delay=0.1)),
        t.after(0.3, 200, 1),
        t.raises(0.0, CircuitOpenError("open", retry_after=1.0), 2),
    )
    assert response.status == 200 and len(transport.sent) == 2


async def test_when_none_is_accepted_the_last_outcome_is_returned_and_the_others_closed() -> None:
    t = Tracked()
    response, _ = await run(
        ParallelStrategy(3, constant_delays(delay=0.1)),
        t.after(0.35, 502, 1),
        t.after(0.1, 503, 2),
        t.after(0.1, 504, 3),
    )
    assert response.status == 502 and sorted(t.closed) == [2, 3]


async def test_when_every_attempt_raises_the_last_error_is_raised() -> None:
    last = TransportError("third")
    t = Tracked()
    with pytest.raises(TransportError) as raised:
        await run(
            ParallelStrategy(3, constant_delays(delay=0.1)),
            t.raises(0.5, TransportError("first"), 1),
            t.raises(0.05, TransportError("second"), 2),
            t.raises(0.4, last, 3),  # started at 0.15, when the second failed: fails last, at 0.55
        )
    assert raised.value is last
    assert_no_tasks_left()


async def test_simultaneous_answers_the_lowest_attempt_wins_and_the_other_is_closed() -> None:
    t = Tracked()
    response, _ = await run(ParallelStrategy(2, constant_delays(delay=0.1)), t.after(0.3, 200, 1), t.after(0.2, 200, 2))
    assert t.closed == [2]
    await response.close()
    assert t.closed == [2, 1]


async def test_a_loser_that_answers_despite_its_cancellation_is_closed() -> None:
    t = Tracked()

    async def stubborn(request: Request) -> Response:
        try:
            await asyncio.sleep(HANG)
        except asyncio.CancelledError:
            return t.response(200, 1)  # swallows the cancellation and answers anyway
        raise AssertionError("unreachable")

    response, _ = await run(ParallelStrategy(2, constant_delays(delay=0.1)), stubborn, t.after(0.05, 200, 2))
    assert t.closed == [1] and not response.closed
    assert_no_tasks_left()


async def test_attempts_share_the_callers_contextvars() -> None:
    tenant: contextvars.ContextVar[str] = contextvars.ContextVar("tenant")
    seen: list[str] = []

    def recording(seconds: float) -> Callable[[Request], Awaitable[Response]]:
        async def step(request: Request) -> Response:
            seen.append(tenant.get())
            await asyncio.sleep(seconds)
            return Response(200)

        return step

    tenant.set("acme")
    await run(ParallelStrategy(2, constant_delays(delay=0.1)), recording(HANG), recording(0))
    assert seen == ["acme", "acme"]


# --- cancellation of the call ------------------------------------------------------------------


async def test_cancelling_the_call_cancels_and_awaits_every_attempt() -> None:
    t = Tracked()
    transport = FakeTransport([t.after(HANG, 200, 1), t.after(HANG, 200, 2)])
    task = asyncio.create_task(send(Pipeline(transport, [ParallelStrategy(2, constant_delays(delay=0.1))]), get("x")))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sorted(t.cancelled) == [1, 2]
    assert_no_tasks_left()


async def test_a_timeout_around_the_call_leaves_nothing_behind() -> None:
    t = Tracked()
    transport = FakeTransport([t.after(0.1, 503, 1), t.after(HANG, 200, 2)])
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await Pipeline(transport, [ParallelStrategy(2, constant_delays(delay=1))])(get("x"))
    assert t.closed == [1] and t.cancelled == [2]
    assert_no_tasks_left()


def slow_to_let_go(t: Tracked, tag: int, cleanup: float) -> Step:
    """Hangs; once cancelled it takes ``cleanup`` seconds to let go, however often it is
    cancelled meanwhile, as a transport releasing its connection under a shield does (httpx)."""

    async def step(request: Request) -> Response:
        try:
            await asyncio.sleep(HANG)
        except asyncio.CancelledError:
            t.cancelled.append(tag)
            end = now() + cleanup
            while now() < end:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(end - now())
            raise
        raise AssertionError("unreachable")

    return step


async def test_defect_03_hedging_closes_the_chosen_response_when_cancelled() -> None:
    t = Tracked()
    transport = FakeTransport([slow_to_let_go(t, 1, cleanup=0.2), t.after(0.05, 200, 2)])
    call = asyncio.create_task(send(Pipeline(transport, [ParallelStrategy(2, constant_delays(delay=0.1))]), get("x")))
    start = now()
    # The hedge wins at 0.15 and attempt 1 is cancelled, which takes it until 0.35 to let go;
    # the caller gives up at 0.2, while the race awaits it.
    asyncio.get_running_loop().call_at(start + 0.2, call.cancel)
    with pytest.raises(asyncio.CancelledError):
        await call
    assert t.cancelled == [1] and t.closed == [2]  # the chosen response, never returned, is closed
    assert now() - start == pytest.approx(0.35)
    assert_no_tasks_left()


async def test_defect_03_hedging_closes_the_chosen_response_when_the_client_deadline_fires() -> None:
    t = Tracked()
    transport = FakeTransport([slow_to_let_go(t, 1, cleanup=0.2), t.after(0.05, 200, 2)])
    strategy = ParallelStrategy(2, constant_delays(delay=0.1))
    with pytest.raises(DeadlineExceededError):  # at 0.2, while attempt 1 is letting go
        await Pipeline(transport, [ClientDeadline(timeout=0.2), strategy, SystemHeaders()])(get("x"))
    assert t.cancelled == [1] and t.closed == [2]
    assert_no_tasks_left()


async def test_defect_03_hedging_closes_the_chosen_response_when_cancelled_while_closing_a_loser() -> None:
    t = Tracked()
    closing: list[int] = []

    async def answers_despite_its_cancellation(request: Request) -> Response:
        async def slow_close() -> None:
            closing.append(1)
            await asyncio.sleep(0.1)

        try:
            await asyncio.sleep(HANG)
        except asyncio.CancelledError:
            return Response(200, on_close=slow_close)
        raise AssertionError("unreachable")

    transport = FakeTransport([answers_despite_its_cancellation, t.after(0.05, 200, 2)])
    call = asyncio.create_task(send(Pipeline(transport, [ParallelStrategy(2, constant_delays(delay=0.1))]), get("x")))
    start = now()
    # The hedge wins at 0.15; the loser answers anyway, and closing it takes until 0.25; the
    # caller gives up at 0.2, so the chosen response will not be returned either.
    asyncio.get_running_loop().call_at(start + 0.2, call.cancel)
    with pytest.raises(asyncio.CancelledError):
        await call
    assert closing == [1] and t.closed == [2]
    assert_no_tasks_left()


async def test_cancelled_while_racing_the_latest_rejected_response_is_closed() -> None:
    t = Tracked()
    transport = FakeTransport([t.after(0.05, 503, 1), t.after(HANG, 200, 2)])
    call = asyncio.create_task(send(Pipeline(transport, [ParallelStrategy(2, constant_delays(delay=1))]), get("x")))
    await asyncio.sleep(0.1)  # attempt 1 was rejected at 0.05 and is held; its retry hangs
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert t.closed == [1] and t.cancelled == [2]
    assert_no_tasks_left()


async def test_also_check_2_a_second_cancellation_during_cleanup_still_closes_every_response() -> None:
    closing: list[int] = []
    closed: list[int] = []

    def slow_to_close(status: int, tag: int) -> Response:
        async def on_close() -> None:
            closing.append(tag)
            await asyncio.sleep(0.1)  # a release that takes a while (a graceful connection close)
            closed.append(tag)

        return Response(status, on_close=on_close)

    async def rejected(request: Request) -> Response:
        await asyncio.sleep(0.05)
        return slow_to_close(503, 1)

    async def answers_despite_its_cancellation(request: Request) -> Response:
        try:
            await asyncio.sleep(HANG)
        except asyncio.CancelledError:
            return slow_to_close(200, 2)
        raise AssertionError("unreachable")

    transport = FakeTransport([rejected, answers_despite_its_cancellation])
    call = asyncio.create_task(send(Pipeline(transport, [ParallelStrategy(2, constant_delays(delay=1))]), get("x")))
    await asyncio.sleep(0.1)  # attempt 1's 503 is held; its retry (attempt 2) is running
    call.cancel()  # the race cancels attempt 2, which answers anyway; cleanup closes both
    await asyncio.sleep(0.05)
    assert closing == [1]  # the first close is under way...
    call.cancel()  # ... when a second cancellation comes
    with pytest.raises(asyncio.CancelledError):
        await call
    # Every response was closed, each to its end (Response.close finishes a release it began),
    # and the cancellation still propagated.
    assert closing == [1, 2] and closed == [1, 2]
    assert_no_tasks_left()


async def test_also_check_3_an_attempt_cancelled_by_someone_else_is_a_failed_attempt() -> None:
    """An attempt task can end cancelled though the race did not cancel it: a library cancels its
    own task and lets the CancelledError out. The caller, whom nobody cancelled, must not see a
    CancelledError: the attempt failed without a verdict, as a TransportError (it may or may not
    have reached the server), and is tried again, as any failure, if the request is idempotent."""

    async def cancelled_from_within(request: Request) -> Response:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)
        raise AssertionError("unreachable")

    seen: list[Event] = []
    strategy = ParallelStrategy(3, constant_delays(delay=0.1), event_hooks=[seen.append])
    response, transport = await run(strategy, cancelled_from_within, Response(200))
    assert response.status == 200
    assert [s.request.attempt_kind for s in transport.sent] == ["first", "retry"]
    assert [(e.request.attempt, e.cancelled) for e in seen if isinstance(e, AttemptFinished)] == [(1, True), (2, False)]

    with pytest.raises(TransportError, match="not by the hedging race") as raised:  # a POST is not sent again
        await run(ParallelStrategy(3, constant_delays(delay=0.1)), cancelled_from_within, request=post("x"))
    assert isinstance(raised.value.__cause__, asyncio.CancelledError)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    assert_no_tasks_left()


# --- a broken classifier -----------------------------------------------------------------------


async def test_defect_07_a_raising_classifier_raises_its_own_error_under_hedging() -> None:
    class Broken(DefaultResponseClassifier):
        def classify(self, response: Response) -> ResponseVerdict:
            if response.status == 200:
                raise ValueError("classifier bug")
            return super().classify(response)

    t = Tracked()
    # Attempt 1 is rejected at 0.05 and retried at once (attempt 2, which hangs); the hedge at
    # 0.15 answers at 0.2, and judging it raises.
    transport = FakeTransport([t.after(0.05, 503, 1), t.after(HANG, 200, 2), t.after(0.05, 200, 3)])
    pipeline = Pipeline(transport, [ParallelStrategy(3, constant_delays(delay=0.1), classifier=Broken())])
    caught: BaseException | None = None
    try:
        await pipeline(get("x"))
    except ValueError as error:  # the error itself, as SequentialStrategy raises it: no ExceptionGroup
        caught = error
    assert type(caught) is ValueError and str(caught) == "classifier bug"
    assert sorted(t.closed) == [1, 3] and t.cancelled == [2]  # nothing leaks
    assert_no_tasks_left()


# --- Retry-After -------------------------------------------------------------------------------


async def test_retry_after_on_a_rejection_holds_back_the_next_attempt() -> None:
    seen: list[Event] = []
    start, t = now(), Tracked()
    strategy = ParallelStrategy(2, constant_delays(delay=0.1), event_hooks=[seen.append])
    response, transport = await run(strategy, t.after(0.05, 503, 1, {"Retry-After": "1"}), t.after(0, 200, 2))
    assert offsets(transport, start) == [0.0, 1.05]  # not the 0.1 of the hedge timer
    assert response.status == 200 and t.closed == [1]
    assert [type(e) for e in seen if isinstance(e, RetryAfterHonoured | RetryScheduled)] == [
        RetryAfterHonoured,
        RetryScheduled,
    ]


async def test_retry_after_longer_than_the_time_left_starts_nothing_more() -> None:
    seen: list[Event] = []
    t = Tracked()
    strategy = ParallelStrategy(3, constant_delays(delay=0.1), event_hooks=[seen.append])
    request = get("x").replace(deadline=Deadline.from_timeout(2))
    response, transport = await run(strategy, t.after(0.05, 503, 1, {"Retry-After": "5"}), request=request)
    assert response.status == 503 and not response.closed and len(transport.sent) == 1
    assert any(isinstance(e, RetryAfterGaveUp) for e in seen)


# --- budget, idempotency, priority, deadline ---------------------------------------------------


async def test_hedges_spend_from_the_shared_budget() -> None:
    seen: list[Event] = []
    budget = RetryBudget(ratio=0.0, min_per_second=0.1)  # one extra attempt in the window
    strategy = ParallelStrategy(3, constant_delays(delay=0.1), budget=budget, event_hooks=[seen.append])
    t = Tracked()
    start = now()
    _, transport = await run(strategy, t.after(0.5, 200, 1), t.after(HANG, 200, 2))
    assert offsets(transport, start) == [0.0, 0.1]
    [exhausted] = [e for e in seen if isinstance(e, BudgetExhausted)]
    assert (exhausted.attempt, exhausted.kind) == (3, "hedge")
    assert (budget.first_attempts, budget.extra_attempts) == (1, 1)


async def test_a_hedge_budget_caps_this_strategys_extra_load() -> None:
    hedges = RetryBudget(ratio=0.1, min_per_second=0.0)
    strategy = ParallelStrategy(2, constant_delays(delay=0.1), hedge_budget=hedges)
    transport = FakeTransport()
    pipeline = Pipeline(transport, [strategy])
    t = Tracked()
    for _ in range(50):
        transport.add(t.after(0.2, 200, 1), t.after(0.2, 200, 2))
        await pipeline(get("x"))
        transport._script.clear()
    assert len(transport.sent) - 50 == 5  # 10% of 50 calls


async def test_a_post_is_not_hedged() -> None:
    t = Tracked()
    response, transport = await run(
        ParallelStrategy(3, constant_delays(delay=0.1)), t.after(1, 200, 1), request=post("x")
    )
    assert response.status == 200 and len(transport.sent) == 1


async def test_a_post_that_never_left_the_machine_is_sent_again_at_once() -> None:
    start = now()
    response, transport = await run(
        ParallelStrategy(3, constant_delays(delay=0.1)), ConnectError("refused"), Response(200), request=post("x")
    )
    assert response.status == 200 and offsets(transport, start) == [0.0, 0.0]
    assert [s.request.attempt_kind for s in transport.sent] == ["first", "retry"]


async def test_hedges_are_marked_and_can_go_at_low_priority() -> None:
    t = Tracked()
    strategy = ParallelStrategy(3, constant_delays(delay=0.1), hedge_priority=Priority.LOW)
    _, transport = await run(
        strategy,
        t.after(HANG, 200, 1),
        t.after(0.01, 503, 2),
        t.after(0, 200, 3),
        request=get("x").replace(priority=Priority.HIGH),
    )
    kinds = [(s.request.attempt, s.request.attempt_kind, s.request.priority) for s in transport.sent]
    assert kinds == [(1, "first", Priority.HIGH), (2, "hedge", Priority.LOW), (3, "hedge", Priority.LOW)]


async def test_every_attempt_gets_the_call_deadline() -> None:
    t = Tracked()
    request = get("x").replace(deadline=Deadline.from_timeout(1))
    _, transport = await run(
        ParallelStrategy(2, constant_delays(delay=0.1)), t.after(HANG, 200, 1), t.after(0, 200, 2), request=request
    )
    assert [s.timeout for s in transport.sent] == pytest.approx([1.0, 0.9])
    assert all(s.request.deadline == request.deadline for s in transport.sent)


async def test_no_hedge_starts_with_less_than_the_threshold_left() -> None:
    t = Tracked()
    transport = FakeTransport([t.after(HANG, 200, 1), t.after(0, 200, 2)])
    pipeline = Pipeline(transport, [ParallelStrategy(3, constant_delays(delay=0.1))])
    with pytest.raises(DeadlineExceededError):  # the hedge, due at 0.1, would have had 3 ms
        await pipeline(get("x").replace(deadline=Deadline.from_timeout(0.103)))
    assert len(transport.sent) == 1


async def test_the_deadline_bounds_how_many_hedges_start() -> None:
    t = Tracked()
    transport = FakeTransport([t.after(HANG, 200, k) for k in range(1, 6)])
    pipeline = Pipeline(transport, [ParallelStrategy(5, constant_delays(delay=0.1))])
    with pytest.raises(DeadlineExceededError):
        await pipeline(get("x").replace(deadline=Deadline.from_timeout(0.25)))
    assert len(transport.sent) == 3  # at 0, 0.1 and 0.2; the one due at 0.3 never started
    assert_no_tasks_left()


async def test_one_attempt_is_just_one_attempt() -> None:
    response, transport = await run(ParallelStrategy(1, constant_delays()), Response(503))
    assert response.status == 503 and len(transport.sent) == 1


# --- events and options ------------------------------------------------------------------------


async def test_events_report_hedges_and_cancelled_losers() -> None:
    seen: list[Event] = []
    t = Tracked()
    await run(
        ParallelStrategy(2, constant_delays(delay=0.1), event_hooks=[seen.append]),
        t.after(HANG, 200, 1),
        t.after(0.05, 200, 2),
    )
    [hedge] = [e for e in seen if isinstance(e, HedgeStarted)]
    assert hedge.after == pytest.approx(0.1) and hedge.request.attempt == 2
    finished = {e.request.attempt: e for e in seen if isinstance(e, AttemptFinished)}
    assert finished[2].status == 200 and finished[1].cancelled and finished[1].elapsed == pytest.approx(0.15)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"attempts_count": 0}, "attempts_count"),
        ({"attempts_count": 2.5}, "attempts_count"),
        ({"max_retry_after": -1.0}, "max_retry_after"),
        ({"delays_provider": None}, "delays_provider"),
    ],
)
async def test_bad_options_raise_value_error_naming_the_parameter(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ParallelStrategy(**options)  # type: ignore[arg-type]


async def test_the_factory_mirrors_aio_request() -> None:
    strategy = parallel_strategy(attempts_count=2, delays_provider=constant_delays(delay=0.2))
    assert (strategy.attempts_count, strategy.delays_provider) == (2, constant_delays(delay=0.2))
    assert parallel_strategy().delays_provider == linear_delays()
