"""How the breaker, the retry budget and Retry-After protect a server in trouble, over many calls.

The servers are the fault servers of ``conftest.py``; time is looptime's virtual clock, so a run
of eight seconds of flapping takes a few real milliseconds and every instant is exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from aio_pipeline import (
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    Deadline,
    DefaultCircuitBreaker,
    Event,
    Middleware,
    ParallelStrategy,
    Request,
    Response,
    RetryAfterGaveUp,
    RetryBudget,
    SequentialStrategy,
    constant_delays,
    get,
    parallel_strategy,
    retry_until_deadline_expired,
    sequential_strategy,
    setup,
    single_attempt_strategy,
)

from .conftest import NEVER_ANSWERS, RETRY_AFTER_3600, Rig, flapping, unavailable

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

DEADLINE = 1.0
TOLERANCE = 0.005

STRATEGIES: dict[str, Callable[[], Middleware[Request, Response]]] = {
    "single": single_attempt_strategy,
    "sequential": lambda: sequential_strategy(attempts_count=3, delays_provider=constant_delays(delay=0.05)),
    "parallel": lambda: parallel_strategy(attempts_count=3, delays_provider=constant_delays(delay=0.1)),
}


# --- the breaker ---------------------------------------------------------------------------------

#: The flapping server is healthy for PERIOD seconds, failing for as long, and so on.
PERIOD = 2.0
#: A call every INTERVAL seconds for FLAPS periods.
INTERVAL = 0.1
FLAPS = 4
BREAK = 0.5


def failing_at(at: float) -> bool:
    return int(at / PERIOD) % 2 == 1


@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_a_flapping_server_opens_the_breaker_while_failing_and_closes_it_when_healthy(
    rig: Rig, strategy: str
) -> None:
    url = await rig.serve(flapping(PERIOD))
    loop = asyncio.get_running_loop()
    started = loop.time()
    transitions: list[CircuitStateChanged[str]] = []
    circuit = DefaultCircuitBreaker[str, Response](
        break_duration=BREAK,
        sampling_duration=1.0,
        minimum_throughput=4,
        failure_threshold=0.5,
        hooks=[transitions.append],
    )
    client = setup(transport=rig.transport, endpoint=url, circuit_breaker=circuit)
    refused = 0

    for _ in range(round(FLAPS * PERIOD / INTERVAL)):
        call_started, sent = loop.time(), rig.requests
        async with client.request(
            get("thing"), deadline=Deadline.from_timeout(DEADLINE), strategy=STRATEGIES[strategy]()
        ) as response:
            assert loop.time() - call_started <= DEADLINE + TOLERANCE
            if response.status == 502:  # the circuit refused (maybe a retry after a 503), saying so
                refused += 1
                assert isinstance(getattr(response, "error", None), CircuitOpenError)
                assert response.headers["X-Circuit-Breaker"] == "1"
                if rig.requests == sent:  # refused from the first attempt: at once
                    assert loop.time() == call_started
            else:
                assert response.status == (503 if failing_at(call_started - started) else 200)
        await asyncio.sleep(max(call_started + INTERVAL - loop.time(), 0))

    assert refused > 0
    opened = [t.at - started for t in transitions if t.new is CircuitState.OPEN and t.reason == "failure_ratio"]
    closed = [t.at - started for t in transitions if t.new is CircuitState.CLOSED]
    # It opens in each failing period, and only then; it closes again soon after each recovery.
    assert len(opened) == FLAPS // 2
    assert all(failing_at(at) for at in opened)
    assert [int(at // PERIOD) for at in closed] == [2]  # the last period is still failing at the end
    assert closed[0] - 2 * PERIOD <= 2 * BREAK
    # No request reached the server while the circuit was open.
    for change, following in zip(transitions, [*transitions[1:], None], strict=True):
        if change.new is CircuitState.OPEN:
            until = following.at if following is not None else loop.time()
            assert not [at for at in rig.arrivals if change.at < at < until]
    await rig.finish()


async def test_a_server_that_never_answers_opens_the_breaker(rig: Rig) -> None:
    url = await rig.serve(NEVER_ANSWERS)
    circuit = DefaultCircuitBreaker[str, Response](
        break_duration=60.0, sampling_duration=60.0, minimum_throughput=2, failure_threshold=0.5
    )
    client = setup(transport=rig.transport, endpoint=url, circuit_breaker=circuit)
    statuses = []

    for _ in range(4):
        async with client.request(
            get("thing"), deadline=Deadline.from_timeout(DEADLINE), strategy=single_attempt_strategy()
        ) as response:
            statuses.append(response.status)

    assert statuses == [408, 408, 502, 502]
    assert rig.requests == 2
    await rig.finish()


# --- the budget ----------------------------------------------------------------------------------

CALLS = 50
#: 20% of the calls, plus one retry in reserve (0.1 per second over the 10-second window).
BUDGET = {"ratio": 0.2, "min_per_second": 0.1, "window_seconds": 10.0}
MOST_EXTRA = 0.2 * CALLS + 1

AMPLIFIERS: dict[str, Callable[[], Middleware[Request, Response]]] = {
    "sequential": lambda: sequential_strategy(attempts_count=3, delays_provider=constant_delays(delay=0)),
    "parallel": lambda: parallel_strategy(attempts_count=3, delays_provider=constant_delays(delay=0.01)),
    "until_deadline": lambda: retry_until_deadline_expired(delays_provider=constant_delays(delay=0.01)),
}


@pytest.mark.parametrize("strategy", AMPLIFIERS)
async def test_the_budget_bounds_the_extra_load_on_a_server_failing_every_call(rig: Rig, strategy: str) -> None:
    url = await rig.serve(unavailable)
    budget = RetryBudget(**BUDGET)
    client = setup(transport=rig.transport, endpoint=url, retry_budget=budget)

    for _ in range(CALLS):
        async with client.request(
            get("thing"), deadline=Deadline.from_timeout(DEADLINE), strategy=AMPLIFIERS[strategy]()
        ) as response:
            assert response.status == 503

    # Without the budget: 3 attempts a call (until_deadline: ~100). With it: 20% more, plus one.
    assert budget.first_attempts == CALLS
    assert CALLS * 0.2 - 1 <= budget.extra_attempts <= MOST_EXTRA
    assert rig.requests == CALLS + budget.extra_attempts
    await rig.finish()


# --- Retry-After ---------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", [SequentialStrategy, ParallelStrategy])
async def test_a_retry_after_longer_than_the_deadline_gives_up_at_once_and_says_so(
    rig: Rig, strategy: type[SequentialStrategy] | type[ParallelStrategy]
) -> None:
    url = await rig.serve(RETRY_AFTER_3600)
    events: list[Event] = []
    client = setup(transport=rig.transport, endpoint=url)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async with client.request(
        get("thing"),
        deadline=Deadline.from_timeout(DEADLINE),
        strategy=strategy(attempts_count=3, delays_provider=constant_delays(delay=0.1), event_hooks=[events.append]),
    ) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "3600"

    assert loop.time() == started
    assert rig.requests == 1
    (gave_up,) = [event for event in events if isinstance(event, RetryAfterGaveUp)]
    assert gave_up.retry_after == 3600
    assert gave_up.limit < DEADLINE
    await rig.finish()
