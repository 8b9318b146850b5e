"""Strategies against a real aiohttp server on 127.0.0.1, through real aiohttp client sessions.

Server latencies are virtual (looptime), so latency assertions are exact; the assertions on load
read the server's own counters, not only what the client saw.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import aiohttp
import pytest

from aio_pipeline import AioHttpTransport, Client, Deadline, DeadlineExceededError, Middleware, Pipeline, get
from aio_pipeline.extensions import with_event_hook
from aio_pipeline.http import Request, Response
from aio_pipeline.middlewares.hedging import ParallelStrategy, parallel_strategy
from aio_pipeline.middlewares.retry import sequential_strategy
from aio_pipeline.middlewares.strategy import PerCallStrategy
from aio_pipeline.policy import (
    AttemptStarted,
    Event,
    PercentileBasedRequestAttemptDelaysProvider,
    RetryBudget,
    constant_delays,
    linear_delays,
)

if TYPE_CHECKING:
    from conftest import Backend  # the fixture's type (tests/integration/conftest.py)

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

Strategy = Middleware[Request, Response]


class RecordingTransport(AioHttpTransport):
    """Keeps every response it hands out, to check that each one was closed."""

    def __init__(self, session: aiohttp.ClientSession, *, buffer_payload: bool) -> None:
        super().__init__(session, buffer_payload=buffer_payload)
        self.responses: list[Response] = []

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        response = await super().send(endpoint, request, timeout)
        self.responses.append(response)
        return response


def client_for(
    backend: Backend, session: aiohttp.ClientSession, *, budget: RetryBudget | None, buffer_payload: bool = True
) -> Client:
    transport = RecordingTransport(session, buffer_payload=buffer_payload)
    return Client(backend.endpoint, Pipeline(transport, [PerCallStrategy(budget=budget)]))


async def call(client: Client, route: str, strategy: Strategy, *, timeout: float = 5.0) -> tuple[float, int]:
    """One call; its latency on the loop clock and its status (0 for an exception)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with client.request(get(route), deadline=Deadline.from_timeout(timeout), strategy=strategy) as response:
            await response.read()
            status = response.status
    except DeadlineExceededError:
        status = 0
    return loop.time() - started, status


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[math.ceil(fraction * len(ordered)) - 1]


async def settle(backend: Backend) -> None:
    """Let handlers whose client gave up run out (virtual time), so no task is left behind."""
    await backend.idle.wait()


# --- a flaky endpoint --------------------------------------------------------------------------

# Three attempts at 30% failure succeed 97.3% of the time, too close to the 97% bar to assert on a
# few hundred calls; four give 99.2%.
FLAKY_STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "sequential": lambda: sequential_strategy(
        attempts_count=4, delays_provider=linear_delays(min_delay_seconds=0.01, delay_multiplier=0.01)
    ),
    "parallel": lambda: parallel_strategy(attempts_count=4, delays_provider=constant_delays(delay=0.1)),
}


@pytest.mark.parametrize("kind", list(FLAKY_STRATEGIES))
async def test_a_flaky_endpoint_answers_at_least_97_percent_of_calls(backend: Backend, kind: str) -> None:
    calls, attempts = 300, list[Event]()
    async with aiohttp.ClientSession() as session:
        client = client_for(backend, session, budget=RetryBudget())
        statuses = []
        for _ in range(calls):
            async with client.request(
                with_event_hook(get("flaky"), attempts.append), strategy=FLAKY_STRATEGIES[kind]()
            ) as response:
                statuses.append(response.status)
    successes = statuses.count(200)
    assert successes >= 0.97 * calls
    # The server agrees: one 200 served per successful call, and every attempt the client
    # reported arrived (no hedge fired: the endpoint answers before any hedge delay).
    assert backend.answered["flaky", 200] == successes
    assert backend.received["flaky"] == sum(isinstance(event, AttemptStarted) for event in attempts)
    assert backend.received["flaky"] < 1.5 * calls


# --- a heavy-tailed endpoint -------------------------------------------------------------------


async def test_hedging_cuts_the_tail_of_a_heavy_tailed_endpoint(backend: Backend) -> None:
    calls = 300
    async with aiohttp.ClientSession() as session:
        client = client_for(backend, session, budget=RetryBudget())
        single = [await call(client, "tail", ParallelStrategy(attempts_count=1)) for _ in range(calls)]
        single_hits = backend.received["tail"]
        hedged = [
            await call(
                client, "tail", parallel_strategy(attempts_count=2, delays_provider=constant_delays(delay=0.005))
            )
            for _ in range(calls)
        ]
    hedged_hits = backend.received["tail"] - single_hits
    single_latency, hedged_latency = [t for t, _ in single], [t for t, _ in hedged]
    assert all(status == 200 for _, status in single + hedged)
    assert percentile(single_latency, 0.5) == pytest.approx(backend.FAST_SECONDS, abs=1e-4)
    assert percentile(single_latency, 0.99) >= backend.TAIL_SECONDS  # the tail, without hedging
    assert percentile(hedged_latency, 0.5) == pytest.approx(backend.FAST_SECONDS, abs=1e-4)
    assert percentile(hedged_latency, 0.99) <= 5 * percentile(hedged_latency, 0.5)  # 7 ms: hedge at 5 + 2
    # Only the slow calls were hedged: the extra load is about the 5% tail, not 2x.
    assert single_hits == calls and calls < hedged_hits <= 1.1 * calls


async def test_hedging_at_an_observed_percentile_cuts_the_tail_too(backend: Backend) -> None:
    provider = PercentileBasedRequestAttemptDelaysProvider(percentile=0.9, min_delay_seconds=0.003, min_samples=20)
    async with aiohttp.ClientSession() as session:
        client = client_for(backend, session, budget=RetryBudget())
        strategy = ParallelStrategy(attempts_count=2, delays_provider=provider)
        for _ in range(30):  # warm up: until 20 samples are seen it does not hedge early
            await call(client, "tail", strategy)
        hedged = [await call(client, "tail", strategy) for _ in range(300)]
    assert provider(get("tail"), 1) == pytest.approx(0.003)  # p90 is 2 ms: the 3 ms floor applies
    latency = [t for t, _ in hedged]
    assert percentile(latency, 0.99) <= 3 * percentile(latency, 0.5)


# --- a uniformly slow endpoint -----------------------------------------------------------------


async def test_hedging_a_slow_endpoint_stops_at_the_deadline(backend: Backend) -> None:
    calls = 40
    async with aiohttp.ClientSession() as session:
        client = client_for(backend, session, budget=None)  # no budget: only the deadline limits
        strategy = parallel_strategy(attempts_count=10, delays_provider=constant_delays(delay=0.1))
        results = [await call(client, "slow", strategy, timeout=0.35) for _ in range(calls)]
        await settle(backend)
    assert all(status == 0 and latency == pytest.approx(0.35) for latency, status in results)
    # Attempts at 0, 0.1, 0.2 and 0.3; the one due at 0.4 is past the deadline: 4x, not 10x.
    assert backend.received["slow"] == 4 * calls


async def test_hedging_a_slow_endpoint_stays_within_the_budget(backend: Backend) -> None:
    calls = 100
    budget = RetryBudget(ratio=0.2, min_per_second=1.0, window_seconds=10.0)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        client = client_for(backend, session, budget=budget)
        strategy = parallel_strategy(attempts_count=4, delays_provider=constant_delays(delay=0.1))
        results = await asyncio.gather(*(call(client, "slow", strategy, timeout=0.35) for _ in range(calls)))
        await settle(backend)
    assert all(status == 0 for _, status in results)
    assert backend.received["slow"] <= calls + 0.2 * calls + 1.0 * 10.0  # not 4x: 20% + the reserve
    assert budget.extra_attempts == backend.received["slow"] - calls


# --- nothing leaks -----------------------------------------------------------------------------


async def test_a_thousand_hedged_calls_leave_no_task_connection_or_response_behind(backend: Backend) -> None:
    before = asyncio.all_tasks()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        # Unbuffered responses hold their connection until closed, so a leak would show.
        client = client_for(backend, session, budget=None, buffer_payload=False)  # let every call race

        async def hedged_call(index: int) -> None:
            # Half the calls hedge after 1 ms against the 2 ms /tail: a hedge is cancelled in
            # flight. The other half start three attempts at once against /flaky: they all
            # answer, and every response but one (503s included) must be closed.
            route, delay = ("tail", 0.001) if index % 2 else ("flaky", 0.0)
            strategy = parallel_strategy(attempts_count=3, delays_provider=constant_delays(delay=delay))
            async with client.request(get(route), deadline=Deadline.from_timeout(5), strategy=strategy) as response:
                assert await response.read() == route.encode()

        for batch in range(50):
            await asyncio.gather(*(hedged_call(batch * 20 + index) for index in range(20)))
        assert not connector._acquired  # every connection is back in the pool or closed
        transport = client.pipeline.transport
        assert isinstance(transport, RecordingTransport) and len(transport.responses) > 1000
        assert [response for response in transport.responses if not response.closed] == []
        assert backend.received["tail"] > 1.5 * 500 and backend.received["flaky"] > 2.5 * 500  # hedges happened
        strategy_tasks = [task for task in asyncio.all_tasks() if task.get_name().startswith("aio_pipeline")]
        assert strategy_tasks == []
    await settle(backend)
    for _ in range(100):  # the server's connection handlers end once they see the clients' EOF
        if asyncio.all_tasks() == before:
            break
        await asyncio.sleep(0.01)
    assert asyncio.all_tasks() == before
