"""Two services, one deadline: how a deadline shrinks and a priority travels from hop to hop.

Run: python examples/two_services.py  (exits 0; takes well under a second)

    edge ──▶ orders (A) ──▶ inventory (B)

Both services run the standard server middleware, which reads ``X-Request-Timeout`` and
``X-Request-Priority`` into the handler's context. The orders handler calls inventory with NO
deadline and NO priority of its own: its client pipeline inherits both from the request being
handled, and writes what is left of the deadline into the outgoing headers. Each hop spends a
little time working, so each sees less time than the hop before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

import aio_pipeline as ap
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.priority import ClientPriority
from aio_pipeline.middlewares.wire import SystemHeaders

HOST = "127.0.0.1"
INVENTORY = web.AppKey("inventory", ap.Client)
RUNS = web.AppKey("runs", list[str])


def what_i_saw(request: web.Request, name: str) -> dict[str, Any]:
    """The propagated headers as received, and the context the handler runs with."""
    context = ap.get_context()
    return {
        "service": name,
        "timeout_header": request.headers.get("X-Request-Timeout"),
        "priority_header": request.headers.get("X-Request-Priority"),
        "left": None if context.deadline is None else round(context.deadline.timeout, 4),
        "priority": None if context.priority is None else context.priority.value,
    }


async def inventory(request: web.Request) -> web.Response:
    seen = what_i_saw(request, "inventory")
    await asyncio.sleep(0.02)  # looking things up
    return web.json_response([seen])


async def orders(request: web.Request) -> web.Response:
    request.app[RUNS].append("orders")
    seen = what_i_saw(request, "orders")
    await asyncio.sleep(0.05)  # validating the order
    # No deadline= and no priority= here: both are inherited from the request being handled.
    async with request.app[INVENTORY].request(ap.get("stock/42")) as response:
        downstream = await response.json()
    return web.json_response([seen, *downstream])


def client_pipeline(session: aiohttp.ClientSession) -> ap.Pipeline:
    # deadline (once per call) -> priority -> system headers (per attempt, last) -> transport
    return ap.Pipeline(ap.AioHttpTransport(session), [ClientDeadline(), ClientPriority(), SystemHeaders()])


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, HOST, 0).start()  # port 0: the system picks a free one
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}/"
    finally:
        await runner.cleanup()


def show(hops: list[dict[str, Any]]) -> None:
    for hop in hops:
        print(
            f"  {hop['service']:<9} got X-Request-Timeout {hop['timeout_header']:>7}"
            f"  X-Request-Priority {hop['priority_header']:<6}"
            f" -> handler has {hop['left']:.4f} s left, priority {hop['priority']}"
        )


async def main() -> None:
    async with aiohttp.ClientSession() as session:
        inventory_app = web.Application(middlewares=[ap.aiohttp_middleware_factory()])
        inventory_app.router.add_get("/stock/{id}", inventory)
        async with serve(inventory_app) as inventory_url:
            orders_app = web.Application(middlewares=[ap.aiohttp_middleware_factory()])
            orders_app.router.add_post("/orders", orders)
            orders_app[INVENTORY] = ap.Client(inventory_url, client_pipeline(session))
            orders_app[RUNS] = []
            async with serve(orders_app) as orders_url:
                print(f"orders (A) on {orders_url}, inventory (B) on {inventory_url}")
                await edge_calls(session, orders_url, orders_app[RUNS])


async def edge_calls(session: aiohttp.ClientSession, orders_url: str, runs: list[str]) -> None:
    edge = ap.Client(orders_url, client_pipeline(session))
    for seconds, priority in [(2.0, ap.Priority.HIGH), (0.5, ap.Priority.LOW)]:
        print(f"\nedge -> orders: deadline {seconds} s, priority {priority.value}")
        call = edge.request(ap.post("orders"), deadline=ap.Deadline.from_timeout(seconds), priority=priority)
        async with call as response:
            show(await response.json())

    print("\nedge -> orders: X-Request-Timeout 0 (already expired)")
    before = len(runs)
    async with session.post(f"{orders_url}orders", headers={"X-Request-Timeout": "0"}) as raw:
        print(f"  orders answered {raw.status}; its handler ran {len(runs) - before} times for it")


if __name__ == "__main__":
    asyncio.run(main())
