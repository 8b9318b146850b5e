"""SequentialStrategy on a scripted transport, under a virtual clock: timing, outcomes, closing,
idempotency, Retry-After, deadlines, the budget, events and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from freezegun import freeze_time

from aio_pipeline import (
    ConnectError,
    Deadline,
    DeadlineExceededError,
    Pipeline,
    Request,
    Response,
    TransportError,
    get,
    post,
)
from aio_pipeline.middlewares.retry import (
    SequentialStrategy,
    pass_deadline_through,
    sequential_strategy,
    split_deadline_between_attempts,
)
from aio_pipeline.policy import (
    AttemptFinished,
    AttemptStarted,
    BudgetExhausted,
    Event,
    PercentileBasedRequestAttemptDelaysProvider,
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


def now() -> float:
    return asyncio.get_running_loop().time()


def after(seconds: float, response: Response | None = None) -> Callable[[Request], Awaitable[Response]]:
    """A step that answers ``response`` (200 by default) after ``seconds``."""

    async def step(request: Request) -> Response:
        await asyncio.sleep(seconds)
        return response if response is not None else Response(200)

    return step


def closing(log: list[float], status: int = 503, headers: dict[str, str] | None = None) -> Response:
    """A response that records the loop time it is closed at."""

    async def on_close() -> None:
        log.append(now())

    return Response(status, headers, on_close=on_close)


async def run(
    strategy: SequentialStrategy, *steps: Step, request: Request | None = None
) -> tuple[Response, FakeTransport]:
    transport = FakeTransport(steps)
    response = await Pipeline(transport, [strategy])(request or get("x"))
    return response, transport


async def send(pipeline: Pipeline, request: Request) -> Response:
    return await pipeline(request)


def offsets(transport: FakeTransport, start: float) -> list[float]:
    return [round(sent.at - start, 6) for sent in transport.sent]


# --- timing for each delays provider -----------------------------------------------------------


async def test_constant_delays_space_attempts_evenly() -> None:
    start = now()
    response, transport = await run(
        SequentialStrategy(attempts_count=3, delays_provider=constant_delays(delay=0.1)),
        Response(503),
        Response(503),
        Response(200),
    )
    assert response.status == 200
    assert offsets(transport, start) == [0.0, 0.1, 0.2]


async def test_linear_delays_grow_by_the_multiplier_counting_attempts_made() -> None:
    start = now()
    provider = linear_delays(min_delay_seconds=0.1, delay_multiplier=0.1, jitter=0.0)
    _, transport = await run(SequentialStrategy(3, provider), Response(503), Response(503), Response(503))
    assert offsets(transport, start) == [0.0, 0.2, 0.5]  # waits 0.1 + 1 * 0.1, then 0.1 + 2 * 0.1


async def test_the_familiar_linear_delays_stay_within_their_jitter() -> None:
    start = now()
    strategy = sequential_strategy(
        attempts_count=3, delays_provider=linear_delays(min_delay_seconds=0.1, delay_multiplier=0.1)
    )
    _, transport = await run(strategy, Response(503), Response(503), Response(200))
    at = offsets(transport, start)
    first_wait, second_wait = at[1] - at[0], at[2] - at[1]
    assert 0.16 <= first_wait <= 0.24 and 0.24 <= second_wait <= 0.36


async def test_exponential_delays_double_after_the_attempt_time() -> None:
    start = now()
    provider = exponential_backoff_delays(base_delay_seconds=0.1, multiplier=2.0, max_delay_seconds=1.0, jitter=0.0)
    _, transport = await run(
        SequentialStrategy(4, provider), after(0.05, Response(503)), Response(503), Response(503), Response(200)
    )
    assert offsets(transport, start) == [0.0, 0.15, 0.35, 0.75]  # the first attempt itself took 0.05


async def test_percentile_delays_learn_from_accepted_attempts() -> None:
    provider = PercentileBasedRequestAttemptDelaysProvider(min_delay_seconds=0.01, min_samples=5)
    strategy = SequentialStrategy(2, provider)
    for _ in range(5):
        await run(strategy, after(0.04))
    start = now()
    _, transport = await run(strategy, Response(503), Response(200))
    assert offsets(transport, start) == [0.0, 0.04]


# --- outcomes and closing ----------------------------------------------------------------------


async def test_the_rejected_response_is_closed_before_the_wait() -> None:
    closed_at: list[float] = []
    start = now()
    response, _ = await run(SequentialStrategy(2, constant_delays(delay=1.0)), closing(closed_at), Response(200))
    assert response.status == 200 and not response.closed
    assert [round(t - start, 6) for t in closed_at] == [0.0]


async def test_when_every_attempt_is_rejected_the_last_response_is_returned_and_the_rest_closed() -> None:
    closed_at: list[float] = []
    last = Response(502)
    response, transport = await run(
        SequentialStrategy(3, constant_delays()), closing(closed_at), closing(closed_at), last
    )
    assert response is last and not last.closed
    assert len(closed_at) == 2 and len(transport.sent) == 3


async def test_the_last_exception_is_reraised_as_it_was() -> None:
    last = TransportError("reset again")
    with pytest.raises(TransportError) as raised:
        await run(SequentialStrategy(2, constant_delays()), TransportError("reset"), last)
    assert raised.value is last and raised.value.__cause__ is None


async def test_an_error_then_a_success() -> None:
    response, transport = await run(SequentialStrategy(3, constant_delays()), ConnectError("refused"), Response(200))
    assert response.status == 200 and len(transport.sent) == 2


async def test_an_accepted_error_response_is_not_retried() -> None:
    response, transport = await run(SequentialStrategy(3, constant_delays()), Response(404))
    assert response.status == 404 and len(transport.sent) == 1


async def test_x_do_not_retry_stops_at_once() -> None:
    response, transport = await run(SequentialStrategy(3, constant_delays()), Response(503, {"X-Do-Not-Retry": "1"}))
    assert response.status == 503 and len(transport.sent) == 1


async def test_attempts_are_numbered_and_marked() -> None:
    _, transport = await run(SequentialStrategy(3, constant_delays()), Response(503), Response(503), Response(503))
    assert [(s.request.attempt, s.request.attempt_kind) for s in transport.sent] == [
        (1, "first"),
        (2, "retry"),
        (3, "retry"),
    ]


# --- idempotency -------------------------------------------------------------------------------


async def test_a_post_gets_one_attempt() -> None:
    response, transport = await run(SequentialStrategy(3, constant_delays()), Response(503), request=post("x"))
    assert response.status == 503 and len(transport.sent) == 1


async def test_a_post_that_never_left_the_machine_is_retried() -> None:
    response, transport = await run(
        SequentialStrategy(3, constant_delays()), ConnectError("refused"), Response(200), request=post("x")
    )
    assert response.status == 200 and len(transport.sent) == 2


async def test_a_post_that_may_have_arrived_is_not_retried() -> None:
    with pytest.raises(TransportError):
        await run(SequentialStrategy(3, constant_delays()), TransportError("reset"), request=post("x"))


@pytest.mark.parametrize(
    "request_",
    [post("x", retryable=True), post("x", headers={"Idempotency-Key": "abc"}), Request(method="PUT", url="x")],
)
async def test_retryable_marked_keyed_and_idempotent_requests_are_retried(request_: Request) -> None:
    response, transport = await run(
        SequentialStrategy(2, constant_delays()), Response(503), Response(200), request=request_
    )
    assert response.status == 200
    # The same request went out twice, the second time as a retry.
    assert [(s.request.method, s.request.attempt, s.request.attempt_kind) for s in transport.sent] == [
        (request_.method, 1, "first"),
        (request_.method, 2, "retry"),
    ]


# --- Retry-After -------------------------------------------------------------------------------


async def test_retry_after_seconds_lengthens_the_wait() -> None:
    seen: list[Event] = []
    start = now()
    strategy = SequentialStrategy(2, constant_delays(delay=0.1), event_hooks=[seen.append])
    _, transport = await run(strategy, Response(503, {"Retry-After": "2"}), Response(200))
    assert offsets(transport, start) == [0.0, 2.0]
    assert [(e.retry_after, e.delay) for e in seen if isinstance(e, RetryAfterHonoured)] == [(2.0, 2.0)]


async def test_a_shorter_retry_after_does_not_shorten_the_backoff() -> None:
    start = now()
    _, transport = await run(
        SequentialStrategy(2, constant_delays(delay=0.5)), Response(429, {"Retry-After": "0"}), Response(200)
    )
    assert offsets(transport, start) == [0.0, 0.5]


async def test_retry_after_on_other_statuses_is_ignored() -> None:
    start = now()
    _, transport = await run(
        SequentialStrategy(2, constant_delays(delay=0.1)), Response(500, {"Retry-After": "5"}), Response(200)
    )
    assert offsets(transport, start) == [0.0, 0.1]


async def test_retry_after_http_date_is_honoured() -> None:
    with freeze_time("2024-05-01 12:00:00", real_asyncio=True):
        start = now()
        strategy = SequentialStrategy(2, constant_delays(), max_retry_after=10.0)
        asks = Response(429, {"Retry-After": "Wed, 01 May 2024 12:00:03 GMT"})
        _, transport = await run(
            strategy, asks, Response(200), request=get("x").replace(deadline=Deadline.from_timeout(5))
        )
    assert offsets(transport, start) == [0.0, 3.0]


async def test_retry_after_longer_than_the_deadline_stops_at_once_with_that_response() -> None:
    seen: list[Event] = []
    start = now()
    asks = Response(503, {"Retry-After": "10"})
    strategy = SequentialStrategy(3, constant_delays(), event_hooks=[seen.append])
    response, transport = await run(strategy, asks, request=get("x").replace(deadline=Deadline.from_timeout(2)))
    assert response is asks and not asks.closed
    assert now() == start and len(transport.sent) == 1
    [gave_up] = [e for e in seen if isinstance(e, RetryAfterGaveUp)]
    assert gave_up.retry_after == 10.0 and gave_up.limit == pytest.approx(2.0, abs=0.01)


async def test_retry_after_beyond_the_maximum_stops_at_once() -> None:
    strategy = SequentialStrategy(3, constant_delays(), max_retry_after=5.0)
    response, transport = await run(strategy, Response(503, {"Retry-After": "60"}))
    assert response.status == 503 and len(transport.sent) == 1


# --- deadlines ---------------------------------------------------------------------------------


async def test_every_attempt_gets_the_remaining_call_deadline_by_default() -> None:
    request = get("x").replace(deadline=Deadline.from_timeout(3))
    _, transport = await run(
        SequentialStrategy(3, constant_delays(delay=0.5)), Response(503), Response(503), Response(200), request=request
    )
    assert [s.timeout for s in transport.sent] == pytest.approx([3.0, 2.5, 2.0])
    assert all(s.request.deadline == request.deadline for s in transport.sent)


async def test_split_deadline_shares_the_time_left_between_the_attempts_left() -> None:
    strategy = SequentialStrategy(3, constant_delays(), deadline_provider=split_deadline_between_attempts())
    request = get("x").replace(deadline=Deadline.from_timeout(9))
    # The first attempt hangs until its own deadline (3 s); the second fails fast after 1 s.
    hang = after(60)
    _, transport = await run(strategy, hang, after(1, Response(503)), Response(200), request=request)
    assert [s.timeout for s in transport.sent] == pytest.approx([3.0, 3.0, 5.0])
    assert request.deadline is not None
    assert all(s.request.deadline is not None and s.request.deadline <= request.deadline for s in transport.sent)


async def test_split_factor_caps_the_number_of_shares() -> None:
    strategy = SequentialStrategy(
        4, constant_delays(), deadline_provider=split_deadline_between_attempts(split_factor=2)
    )
    request = get("x").replace(deadline=Deadline.from_timeout(8))
    _, transport = await run(strategy, *[Response(503)] * 4, request=request)
    assert [s.timeout for s in transport.sent] == pytest.approx([4.0, 8.0, 8.0, 8.0])


async def test_split_factor_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="split_factor"):
        split_deadline_between_attempts(split_factor=1)


async def test_a_request_that_gets_one_attempt_keeps_its_whole_deadline() -> None:
    strategy = SequentialStrategy(3, constant_delays(), deadline_provider=split_deadline_between_attempts())
    _, transport = await run(strategy, Response(503), request=post("x").replace(deadline=Deadline.from_timeout(9)))
    assert [s.timeout for s in transport.sent] == pytest.approx([9.0])


async def test_a_deadline_provider_cannot_extend_the_call_deadline() -> None:
    strategy = SequentialStrategy(
        2, constant_delays(), deadline_provider=lambda deadline, attempt, count: Deadline.from_timeout(60)
    )
    _, transport = await run(strategy, Response(200), request=get("x").replace(deadline=Deadline.from_timeout(1)))
    assert [s.timeout for s in transport.sent] == pytest.approx([1.0])


async def test_no_wait_extends_past_the_deadline() -> None:
    start = now()
    strategy = SequentialStrategy(3, constant_delays(delay=1.0))
    response, transport = await run(
        strategy, Response(503), request=get("x").replace(deadline=Deadline.from_timeout(0.8))
    )
    assert response.status == 503 and len(transport.sent) == 1 and now() == start


async def test_no_attempt_starts_with_less_than_the_threshold_left() -> None:
    strategy = SequentialStrategy(3, constant_delays(delay=0.097))
    _, transport = await run(
        strategy, Response(503), Response(503), request=get("x").replace(deadline=Deadline.from_timeout(0.1))
    )
    assert len(transport.sent) == 1  # after 0.097 s only 3 ms would be left, under the 5 ms threshold
    strategy = SequentialStrategy(3, constant_delays(delay=0.09))
    _, transport = await run(
        strategy, Response(503), Response(503), request=get("x").replace(deadline=Deadline.from_timeout(0.1))
    )
    assert len(transport.sent) == 2


async def test_an_attempt_that_times_out_is_retried_with_what_is_left() -> None:
    strategy = SequentialStrategy(2, constant_delays(), deadline_provider=split_deadline_between_attempts())
    response, transport = await run(
        strategy, after(10), Response(200), request=get("x").replace(deadline=Deadline.from_timeout(2))
    )
    assert response.status == 200 and [s.timeout for s in transport.sent] == pytest.approx([1.0, 1.0])


async def test_when_the_call_deadline_is_spent_the_timeout_is_raised() -> None:
    with pytest.raises(DeadlineExceededError):
        await run(
            SequentialStrategy(3, constant_delays()),
            after(10),
            request=get("x").replace(deadline=Deadline.from_timeout(1)),
        )


async def test_pass_deadline_through_is_the_identity() -> None:
    deadline = Deadline.from_timeout(4)
    assert pass_deadline_through()(deadline, 0, 3) is deadline


# --- the budget --------------------------------------------------------------------------------


async def test_a_spent_budget_skips_the_retry_and_says_so() -> None:
    seen: list[Event] = []
    budget = RetryBudget(ratio=0.0, min_per_second=0.0)
    strategy = SequentialStrategy(3, constant_delays(), budget=budget, event_hooks=[seen.append])
    response, transport = await run(strategy, Response(503))
    assert response.status == 503 and len(transport.sent) == 1
    [exhausted] = [e for e in seen if isinstance(e, BudgetExhausted)]
    assert (exhausted.attempt, exhausted.kind) == (2, "retry")


async def test_a_dead_backend_gets_a_fifth_more_calls_not_three_times_as_many() -> None:
    calls = 500
    budget = RetryBudget(ratio=0.2, min_per_second=1.0, window_seconds=10.0)
    strategy = SequentialStrategy(3, constant_delays(delay=0.001), budget=budget)
    transport = FakeTransport([Response(503)] * (calls * 3))
    pipeline = Pipeline(transport, [strategy])
    for _ in range(calls):
        await pipeline(get("x"))
    extra = len(transport.sent) - calls
    assert extra <= 0.2 * calls + 1.0 * 10.0  # not the 2 * calls that three attempts would make
    assert extra >= 0.2 * calls  # and it does use what it is allowed


# --- events and cancellation -------------------------------------------------------------------


async def test_events_tell_the_story_of_a_retried_call() -> None:
    seen: list[Event] = []
    strategy = SequentialStrategy(2, constant_delays(delay=0.1), event_hooks=[seen.append])
    await run(strategy, Response(503), Response(200))
    assert [type(e) for e in seen] == [AttemptStarted, AttemptFinished, RetryScheduled, AttemptStarted, AttemptFinished]
    scheduled = seen[2]
    assert isinstance(scheduled, RetryScheduled) and (scheduled.next_attempt, scheduled.delay) == (2, 0.1)


async def test_cancelling_the_call_during_the_wait_propagates_and_leaves_nothing_open() -> None:
    closed_at: list[float] = []
    transport = FakeTransport([closing(closed_at)])
    task = asyncio.create_task(send(Pipeline(transport, [SequentialStrategy(2, constant_delays(delay=5))]), get("x")))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(closed_at) == 1


async def test_cancelling_the_call_during_an_attempt_propagates() -> None:
    transport = FakeTransport([after(10)])
    task = asyncio.create_task(send(Pipeline(transport, [SequentialStrategy(3, constant_delays())]), get("x")))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(transport.sent) == 1


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"attempts_count": 0}, "attempts_count"),
        ({"max_retry_after": -1.0}, "max_retry_after"),
        ({"delays_provider": 0.1}, "delays_provider"),
    ],
)
async def test_bad_options_raise_value_error_naming_the_parameter(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        SequentialStrategy(**options)  # type: ignore[arg-type]


async def test_the_factory_mirrors_aio_request() -> None:
    strategy = sequential_strategy()
    assert strategy.attempts_count == 3 and strategy.delays_provider == linear_delays()
    with pytest.raises(ValueError, match="attempts_count"):
        sequential_strategy(attempts_count=0)
