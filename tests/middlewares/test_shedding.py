"""LoadShedding on a real aiohttp server: LOW shed first, HIGH's reserve kept, queueing by
priority, short deadlines shed before they wait, no slot leaked."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import test_utils, web

from aio_pipeline.middlewares.deadline import ServerDeadline
from aio_pipeline.middlewares.priority import ServerPriority
from aio_pipeline.middlewares.shedding import LoadShedding
from aio_pipeline.server.aiohttp import aiohttp_server_middleware

pytestmark = pytest.mark.asyncio


@dataclass
class Service:
    url: str
    shedding: LoadShedding
    session: aiohttp.ClientSession
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    ran: Counter[str] = field(default_factory=Counter)

    async def call(self, priority: str, timeout: float = 10.0, work: float = 0.0) -> aiohttp.ClientResponse:
        headers = {"X-Request-Priority": priority, "X-Request-Timeout": str(timeout), "X-Work": str(work)}
        async with self.session.get(self.url, headers=headers) as response:
            await response.read()
            return response

    def start(self, priority: str, **options: float) -> asyncio.Task[aiohttp.ClientResponse]:
        return asyncio.create_task(self.call(priority, **options))


@pytest_asyncio.fixture
async def make_service() -> AsyncIterator[object]:
    servers: list[test_utils.TestServer] = []
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def make(shedding: LoadShedding) -> Service:
        service: Service

        async def handler(request: web.Request) -> web.Response:
            service.ran[request.headers["X-Request-Priority"]] += 1
            work = float(request.headers["X-Work"])
            if work:
                await asyncio.sleep(work)
            else:
                await service.gate.wait()
            return web.Response(text="done")

        app = web.Application(middlewares=[aiohttp_server_middleware([ServerDeadline(), ServerPriority(), shedding])])
        app.router.add_get("/", handler)
        server = test_utils.TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        service = Service(f"http://127.0.0.1:{server.port}/", shedding, session)
        return service

    yield make
    for server in servers:
        await server.close()
    await session.close()


async def settle() -> None:
    """Let requests in flight reach their handlers (virtual time does not move: no timers due)."""
    for _ in range(50):
        await asyncio.sleep(0)
    await asyncio.sleep(0.001)


@pytest.mark.parametrize(
    ("options", "limits"),
    [
        ({"max_concurrency": 10}, (10, 8, 6)),
        ({"max_concurrency": 5}, (5, 4, 3)),
        ({"max_concurrency": 10, "high_reserve": 0.5, "normal_reserve": 0.3}, (10, 5, 2)),
        ({"max_concurrency": 1}, (1, 1, 1)),
    ],
)
async def test_shares_of_capacity(options: dict[str, float], limits: tuple[int, int, int]) -> None:
    shedding = LoadShedding(**options)  # type: ignore[arg-type]
    from aio_pipeline import Priority

    assert (shedding.limit(Priority.HIGH), shedding.limit(Priority.NORMAL), shedding.limit(Priority.LOW)) == limits


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"max_concurrency": 0}, "max_concurrency"),
        ({"max_concurrency": 2.5}, "max_concurrency"),
        ({"max_concurrency": True}, "max_concurrency"),
        ({"max_concurrency": 4, "high_reserve": 1.0}, "high_reserve"),
        ({"max_concurrency": 4, "normal_reserve": -0.1}, "normal_reserve"),
        ({"max_concurrency": 4, "high_reserve": 0.5, "normal_reserve": 0.5}, "high_reserve"),
        ({"max_concurrency": 4, "max_wait": float("nan")}, "max_wait"),
        ({"max_concurrency": 4, "min_retry_after": -1}, "min_retry_after"),
    ],
)
async def test_bad_options_fail_at_construction(options: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        LoadShedding(**options)  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_low_is_shed_first_and_high_keeps_its_reserve(make_service) -> None:  # type: ignore[no-untyped-def]
    service: Service = await make_service(LoadShedding(max_concurrency=5))  # HIGH 5, NORMAL 4, LOW 3
    held = [service.start("low") for _ in range(3)]
    await settle()
    refused = await service.call("low")
    assert refused.status == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert "X-Do-Not-Retry" not in refused.headers
    held.append(service.start("normal"))  # NORMAL still has room: 4 of 5
    await settle()
    assert (await service.call("normal")).status == 503
    held.append(service.start("high"))  # HIGH's reserve: the 5th slot
    await settle()
    assert (await service.call("high")).status == 503
    assert service.ran == Counter(low=3, normal=1, high=1)  # the shed requests never ran
    assert service.shedding.in_flight == 5
    service.gate.set()
    assert [t.status for t in await asyncio.gather(*held)] == [200] * 5
    assert service.shedding.in_flight == 0
    assert (await service.call("low")).status == 200  # capacity is back


@pytest.mark.looptime
async def test_queued_requests_start_by_priority_when_a_slot_frees(make_service) -> None:  # type: ignore[no-untyped-def]
    service: Service = await make_service(LoadShedding(max_concurrency=1, max_wait=5.0))
    first = service.start("normal", work=1.0)
    await settle()
    low = service.start("low", work=1.0)
    await settle()
    high = service.start("high", work=1.0)
    await settle()
    assert service.shedding.waiting == 2
    loop = asyncio.get_running_loop()
    started = loop.time()
    high_response = await high
    assert loop.time() - started == pytest.approx(2.0, abs=0.05)  # after first (1 s), before low
    assert not low.done()
    assert (await low).status == 200 and high_response.status == 200 and (await first).status == 200
    assert service.shedding.in_flight == 0


@pytest.mark.looptime
async def test_a_deadline_shorter_than_the_expected_wait_is_shed_at_once(make_service) -> None:  # type: ignore[no-untyped-def]
    service: Service = await make_service(LoadShedding(max_concurrency=1, max_wait=30.0))
    for _ in range(30):  # teach it that handlers take about 2 s
        assert (await service.call("normal", work=2.0)).status == 200
    held = service.start("normal", work=2.0)
    await settle()
    loop = asyncio.get_running_loop()
    started = loop.time()
    shed = await service.call("normal", timeout=0.5)
    assert shed.status == 503
    assert loop.time() - started < 0.01  # refused at once, not after waiting 0.5 s
    queued = await service.call("normal", timeout=10.0, work=0.1)  # enough time: it waits its turn
    assert queued.status == 200
    assert (await held).status == 200


@pytest.mark.looptime
async def test_a_request_that_waits_too_long_is_shed_and_leaks_no_slot(make_service) -> None:  # type: ignore[no-untyped-def]
    service: Service = await make_service(LoadShedding(max_concurrency=1, max_wait=0.5))
    held = service.start("normal")
    await settle()
    assert (await service.call("normal", timeout=10.0)).status == 503  # waited 0.5 s, then shed
    waiting = service.start("normal", timeout=10.0)
    await settle()
    waiting.cancel()  # the client gives up while queued: aiohttp cancels the handler
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await settle()
    service.gate.set()
    assert (await held).status == 200
    await settle()
    assert service.shedding.in_flight == 0
    assert service.shedding.waiting == 0
    assert (await service.call("low", work=0.1)).status == 200


@pytest.mark.needs_extras
@pytest.mark.looptime
async def test_a_shed_request_is_counted_as_overloaded_with_the_standard_server_stack() -> None:
    from prometheus_client import CollectorRegistry

    from aio_pipeline import PrometheusMetricsProvider, aiohttp_middleware_factory

    registry = CollectorRegistry()
    gate = asyncio.Event()
    ran: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        ran.append(request.headers["X-Request-Priority"])
        await gate.wait()
        return web.Response(text="done")

    factory = aiohttp_middleware_factory(
        metrics_provider=PrometheusMetricsProvider(registry=registry),
        middlewares=[LoadShedding(max_concurrency=1)],
    )
    app = web.Application(middlewares=[factory])
    app.router.add_get("/work", handler)
    async with test_utils.TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{server.port}/work"
        held = asyncio.create_task(session.get(url, headers={"X-Request-Priority": "high"}))
        await settle()
        async with session.get(url, headers={"X-Request-Priority": "low"}) as shed:
            assert shed.status == 503
            assert "Retry-After" in shed.headers
        gate.set()
        async with await held as response:
            assert response.status == 200
    labels = {"method": "GET", "route": "/work", "client": "unknown", "reason": "overloaded"}
    assert registry.get_sample_value("aio_pipeline_server_rejected_total", labels) == 1
    assert ran == ["high"]  # the shed request never reached its handler
