"""The facade's contract: aio-request's documented examples, run with ``import aio_pipeline as
aio_request``, against a real local server; each test asserts what the server saw."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from aiohttp import test_utils, web

import aio_pipeline as aio_request
from aio_pipeline import get_context

from .conftest import Scripted

pytestmark = [pytest.mark.asyncio]


async def test_setup_get_with_deadline(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    client = aio_request.setup(transport=aio_request.AioHttpTransport(session), endpoint=scripted.base_url)
    response_ctx = client.request(aio_request.get("thing"), deadline=aio_request.Deadline.from_timeout(5))
    async with response_ctx as response:
        assert response.status == 200
        assert await response.json() == {"path": "thing", "status": 200}
    assert response.closed
    (headers,) = scripted.headers["thing"]
    assert 4.5 < float(headers["X-Request-Timeout"]) <= 5
    assert headers["X-Request-Priority"] == "normal"
    assert headers["X-Request-Attempt"] == "1"


@pytest.mark.looptime
async def test_single_attempt_strategy_sends_once(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    scripted.plan("thing", (503, 0))
    client = aio_request.setup(transport=aio_request.AioHttpTransport(session), endpoint=scripted.base_url)
    async with client.request(
        aio_request.get("thing"),
        deadline=aio_request.Deadline.from_timeout(5),
        strategy=aio_request.single_attempt_strategy(),
    ) as response:
        assert response.status == 503
    assert scripted.hits["thing"] == 1


@pytest.mark.looptime
async def test_sequential_strategy_with_linear_delays(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    scripted.plan("thing", (503, 0), (503, 0))
    client = aio_request.setup(transport=aio_request.AioHttpTransport(session), endpoint=scripted.base_url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with client.request(
        aio_request.get("thing"),
        deadline=aio_request.Deadline.from_timeout(5),
        strategy=aio_request.sequential_strategy(
            attempts_count=3,
            delays_provider=aio_request.linear_delays(min_delay_seconds=0.1, delay_multiplier=0.1, jitter=0),
        ),
    ) as response:
        assert response.status == 200
    assert scripted.hits["thing"] == 3
    assert [h["X-Request-Attempt"] for h in scripted.headers["thing"]] == ["1", "2", "3"]
    # linear_delays waits min + k * multiplier after the k-th attempt: 0.2 s, then 0.3 s.
    assert loop.time() - started == pytest.approx(0.5, abs=0.01)


@pytest.mark.looptime
async def test_parallel_strategy_hedges_a_slow_attempt(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    scripted.plan("thing", (200, 3.0))  # the first attempt is slow; the hedge answers at once
    client = aio_request.setup(transport=aio_request.AioHttpTransport(session), endpoint=scripted.base_url)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response_ctx = client.request(
        aio_request.get("thing"),
        deadline=aio_request.Deadline.from_timeout(5),
        strategy=aio_request.parallel_strategy(
            attempts_count=3,
            delays_provider=aio_request.linear_delays(min_delay_seconds=0.1, delay_multiplier=0.1, jitter=0),
        ),
    )
    async with response_ctx as response:
        assert response.status == 200
    assert loop.time() - started == pytest.approx(0.2, abs=0.01)  # the hedge started after 0.2 s
    assert scripted.hits["thing"] == 2
    assert [h["X-Request-Attempt"] for h in scripted.headers["thing"]] == ["1", "2"]


async def test_aiohttp_middleware_factory_serves_a_deadline_to_the_handler() -> None:
    seen: list[float | None] = []

    async def handler(request: web.Request) -> web.Response:
        deadline = get_context().deadline
        seen.append(deadline.timeout if deadline else None)
        return web.Response(text="ok")

    app = web.Application(middlewares=[aio_request.aiohttp_middleware_factory()])
    app.router.add_get("/thing", handler)
    async with test_utils.TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        client = aio_request.setup(
            transport=aio_request.AioHttpTransport(session), endpoint=f"http://127.0.0.1:{server.port}/"
        )
        async with client.request(aio_request.get("thing"), deadline=aio_request.Deadline.from_timeout(3)) as response:
            assert response.status == 200
        async with session.get(f"http://127.0.0.1:{server.port}/thing", headers={"X-Request-Timeout": "0"}) as raw:
            assert raw.status == 408
    (left,) = seen
    assert left is not None and 2.5 < left <= 3


@pytest.mark.looptime
async def test_setup_v2_with_circuit_breaker_fails_fast_with_502(
    scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    scripted.plan("thing", *[(500, 0)] * 10)
    client = aio_request.setup_v2(
        transport=aio_request.AioHttpTransport(session),
        endpoint=scripted.base_url,
        circuit_breaker=aio_request.DefaultCircuitBreaker[str, int](
            break_duration=1.0, sampling_duration=1.0, minimum_throughput=2, failure_threshold=0.5
        ),
    )
    statuses = []
    for _ in range(3):
        async with client.request(aio_request.get("thing"), strategy=aio_request.single_attempt_strategy()) as response:
            statuses.append(response.status)
            breaker_header = response.headers.get("X-Circuit-Breaker")
    assert statuses == [500, 500, 502]
    assert breaker_header == "1"
    assert scripted.hits["thing"] == 2  # the third call never reached the server
    await asyncio.sleep(1.0)  # after break_duration a probe goes through again
    async with client.request(aio_request.get("thing"), strategy=aio_request.single_attempt_strategy()) as response:
        assert response.status == 500
    assert scripted.hits["thing"] == 3
