"""Every fault x every strategy x both transports: the call ends on time with the documented outcome,
the breaker and the budget saw what they should, and nothing is left open.

Each test makes one call through the facade (``setup(transport=..., endpoint=...,
circuit_breaker=..., retry_budget=...)``) or a pipeline built by hand, against one of the fault
servers of ``conftest.py``, on looptime's virtual clock: a deadline is waited out exactly and at
no real cost, so "on time" means to the virtual millisecond. ``rig.finish()`` then checks the
client's pool, the tasks and the file descriptors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from aio_pipeline import (
    CircuitState,
    Client,
    ConnectError,
    Deadline,
    DeadlineExceededError,
    DefaultCircuitBreaker,
    Handler,
    Middleware,
    Pipeline,
    PipelineError,
    Request,
    Response,
    RetryBudget,
    TransportError,
    constant_delays,
    get,
    parallel_strategy,
    sequential_strategy,
    setup,
    single_attempt_strategy,
)
from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.priority import ClientPriority
from aio_pipeline.middlewares.retry import SequentialStrategy
from aio_pipeline.middlewares.strategy import PerCallStrategy
from aio_pipeline.middlewares.wire import SystemHeaders

from .conftest import (
    FLAPS,
    NEVER_ANSWERS,
    REFUSED,
    RESETS_MID_HEADERS,
    RETRY_AFTER_3600,
    SLOW,
    STALLS_BODY,
    TRUNCATES_BODY,
    Fault,
    Rig,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

#: The call's deadline, in virtual seconds.
DEADLINE = 1.0
#: How far past its due time a call may end (virtual seconds): nothing, in practice.
TOLERANCE = 0.005
#: The sequential strategy's wait between attempts; the parallel strategy's hedge delay.
BACKOFF = 0.05
HEDGE_DELAY = 0.1
#: The breaker opens after this many failed attempts in a row (and never on the failure ratio).
CONSECUTIVE_FAILURES = 3

STRATEGIES: dict[str, Callable[[], Middleware[Request, Response]]] = {
    "single": single_attempt_strategy,
    "sequential": lambda: sequential_strategy(attempts_count=3, delays_provider=constant_delays(delay=BACKOFF)),
    "parallel": lambda: parallel_strategy(attempts_count=3, delays_provider=constant_delays(delay=HEDGE_DELAY)),
}


@dataclass(frozen=True)
class Outcome:
    """What one call against a fault must give: the status (408 and 489 are the facade's synthetic
    ones, standing for ``error``), how many attempts were sent, and when it ends (virtual s)."""

    status: int
    attempts: int
    seconds: float
    error: type[PipelineError] | None = None


def deadline(attempts: int) -> Outcome:
    return Outcome(408, attempts, DEADLINE, DeadlineExceededError)


def network_error(attempts: int, seconds: float, error: type[PipelineError] = TransportError) -> Outcome:
    return Outcome(489, attempts, seconds, error)


# fmt: off
#: One row per fault: the outcome with the single, the sequential and the parallel strategy.
#: Sequential waits BACKOFF between attempts; parallel starts the next attempt at once when one
#: fails, or HEDGE_DELAY after the previous one while it hangs.
OUTCOMES: dict[Fault, tuple[Outcome, Outcome, Outcome]] = {
    REFUSED:            (network_error(1, 0, ConnectError), network_error(3, 2 * BACKOFF, ConnectError),
                         network_error(3, 0, ConnectError)),
    NEVER_ANSWERS:      (deadline(1), deadline(1), deadline(3)),
    RESETS_MID_HEADERS: (network_error(1, 0), network_error(3, 2 * BACKOFF), network_error(3, 0)),
    STALLS_BODY:        (deadline(1), deadline(1), deadline(3)),
    TRUNCATES_BODY:     (network_error(1, 0), network_error(3, 2 * BACKOFF), network_error(3, 0)),
    # Retry-After beyond what is left of the deadline: the 503 comes back at once, never retried.
    RETRY_AFTER_3600:   (Outcome(503, 1, 0), Outcome(503, 1, 0), Outcome(503, 1, 0)),
    # 503 for the first request, 200 for the second.
    FLAPS:              (Outcome(503, 1, 0), Outcome(200, 2, BACKOFF), Outcome(200, 2, 0)),
    SLOW:               (deadline(1), deadline(1), deadline(3)),
}
# fmt: on

HANGS = (NEVER_ANSWERS, STALLS_BODY, SLOW)


def matrix() -> list[object]:
    params = []
    for fault, outcomes in OUTCOMES.items():
        for strategy, outcome in zip(STRATEGIES, outcomes, strict=True):
            params.append(pytest.param(fault, strategy, outcome, id=f"{fault}-{strategy}"))
    return params


def breaker() -> DefaultCircuitBreaker[str, Response]:
    # The failure ratio never trips it (1000 samples needed): only CONSECUTIVE_FAILURES does.
    return DefaultCircuitBreaker(
        break_duration=5.0,
        sampling_duration=10.0,
        minimum_throughput=1000,
        failure_threshold=0.5,
        consecutive_failures=CONSECUTIVE_FAILURES,
    )


def counting(attempts: list[int]) -> Middleware[Request, Response]:
    """A per-attempt middleware recording the attempt numbers that reach the transport."""

    async def count(request: Request, call_next: Handler[Request, Response], /) -> Response:
        attempts.append(request.attempt)
        return await call_next(request)

    return count


@pytest.mark.parametrize(("fault", "strategy", "outcome"), matrix())
async def test_a_call_against_a_fault(rig: Rig, fault: Fault, strategy: str, outcome: Outcome) -> None:
    url = await rig.serve(fault)
    circuit, budget, attempts = breaker(), RetryBudget(), []
    client = setup(
        transport=rig.transport,
        endpoint=url,
        circuit_breaker=circuit,
        retry_budget=budget,
        middlewares=[counting(attempts)],
    )
    loop = asyncio.get_running_loop()
    started = loop.time()

    async with client.request(
        get("thing"), deadline=Deadline.from_timeout(DEADLINE), strategy=STRATEGIES[strategy]()
    ) as response:
        elapsed = loop.time() - started
        assert response.status == outcome.status
        error = getattr(response, "error", None)
        if outcome.error is None:
            assert error is None  # the server's own answer, not a synthetic one
        else:
            assert isinstance(error, outcome.error)
            assert await response.read() == b""
        if fault is RETRY_AFTER_3600:
            assert response.headers["Retry-After"] == "3600"
    assert response.closed

    # On time: exactly when the outcome is due, and never past the deadline.
    assert elapsed == pytest.approx(outcome.seconds, abs=TOLERANCE)
    assert elapsed <= DEADLINE + TOLERANCE
    assert attempts == list(range(1, outcome.attempts + 1))
    if fault is REFUSED:
        assert rig.requests == 0
    else:  # aiohttp resends a GET once on its own when the connection drops before an answer
        assert outcome.attempts <= rig.requests <= 2 * outcome.attempts
    # The budget: the call deposited once and paid for each extra attempt.
    assert (budget.first_attempts, budget.extra_attempts) == (1, outcome.attempts - 1)
    # The breaker: every attempt here failed but FLAPS' second; three failures in a row open it.
    failures = outcome.attempts - (1 if outcome.status == 200 else 0)
    (state,) = circuit.state.values()
    assert state is (CircuitState.OPEN if failures >= CONSECUTIVE_FAILURES else CircuitState.CLOSED)

    await rig.finish()


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "single"])
async def test_an_open_circuit_answers_502_at_once_without_touching_the_network(rig: Rig, strategy: str) -> None:
    url = await rig.serve(TRUNCATES_BODY)
    circuit = breaker()
    client = setup(transport=rig.transport, endpoint=url, circuit_breaker=circuit)
    async with client.request(get("thing"), deadline=Deadline.from_timeout(DEADLINE), strategy=STRATEGIES[strategy]()):
        pass  # three network errors in a row: the circuit opens
    sent = rig.requests
    loop = asyncio.get_running_loop()
    started = loop.time()

    async with client.request(
        get("thing"), deadline=Deadline.from_timeout(DEADLINE), strategy=STRATEGIES[strategy]()
    ) as response:
        assert response.status == 502
        assert response.headers["X-Circuit-Breaker"] == "1"
        assert response.headers["X-Do-Not-Retry"] == "1"
        assert 0 < int(response.headers["Retry-After"]) <= 5

    assert loop.time() == started
    assert rig.requests == sent
    await rig.finish()


@pytest.mark.parametrize("fault", HANGS, ids=str)
async def test_hedges_cut_off_by_the_deadline_release_their_connections(
    rig: Rig, fault: Fault, request: pytest.FixtureRequest
) -> None:
    url = await rig.serve(fault)
    client = setup(transport=rig.transport, endpoint=url)

    async with client.request(
        get("thing"), deadline=Deadline.from_timeout(DEADLINE), strategy=STRATEGIES["parallel"]()
    ) as response:
        assert response.status == 408

    assert rig.requests == 3  # three attempts, all still running when the deadline came
    assert rig.checked_out() == 0
    await rig.finish()


# --- a pipeline built by hand raises the library's errors as they are ---------------------------

#: With the sequential strategy: the exception raised, or the status returned.
RAISED: dict[Fault, type[PipelineError] | int] = {
    REFUSED: ConnectError,
    NEVER_ANSWERS: DeadlineExceededError,
    RESETS_MID_HEADERS: TransportError,
    STALLS_BODY: DeadlineExceededError,
    TRUNCATES_BODY: TransportError,
    RETRY_AFTER_3600: 503,
    FLAPS: 200,
    SLOW: DeadlineExceededError,
}


@pytest.mark.parametrize("fault", RAISED, ids=str)
async def test_a_pipeline_built_by_hand(rig: Rig, fault: Fault) -> None:
    url = await rig.serve(fault)
    strategy = SequentialStrategy(attempts_count=3, delays_provider=constant_delays(delay=BACKOFF))
    pipeline = Pipeline(
        rig.transport,
        [
            ClientDeadline(timeout=DEADLINE),  # no deadline is given: this one applies
            ClientPriority(),
            PerCallStrategy(strategy),
            CircuitBreakerMiddleware(breaker()),
            SystemHeaders(),
        ],
    )
    client = Client(url, pipeline)
    loop = asyncio.get_running_loop()
    started = loop.time()
    expected = RAISED[fault]

    if isinstance(expected, int):
        async with client.request(get("thing")) as response:
            assert response.status == expected
    else:
        with pytest.raises(expected) as raised:
            async with client.request(get("thing")):
                pytest.fail("no response can come from this fault")
        assert type(raised.value) is expected or expected is TransportError  # never wrapped
        assert isinstance(raised.value.request, Request)

    assert loop.time() - started <= DEADLINE + TOLERANCE
    await rig.finish()


# --- a caller giving up mid-call ----------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("fault", HANGS, ids=str)
async def test_a_caller_cancelling_mid_call_leaves_nothing_open(rig: Rig, fault: Fault, strategy: str) -> None:
    url = await rig.serve(fault)
    client = setup(transport=rig.transport, endpoint=url, circuit_breaker=breaker(), retry_budget=RetryBudget())

    async def call() -> None:
        async with client.request(
            get("thing"), deadline=Deadline.from_timeout(DEADLINE), strategy=STRATEGIES[strategy]()
        ):
            pytest.fail("no response can come from this fault")

    task = asyncio.create_task(call())
    await asyncio.sleep(DEADLINE / 2)  # virtual: every hedge has started by now
    assert not task.done()
    task.cancel()

    with pytest.raises(asyncio.CancelledError):  # never wrapped, never turned into a response
        await task
    assert rig.requests == (3 if strategy == "parallel" else 1)
    await rig.finish()
