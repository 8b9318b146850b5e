"""An existing code base gets deadlines, priorities, retries and a circuit breaker: one line changed.

Run: python examples/existing_client.py  (exits 0 in well under a second)

``fetch_user`` and ``fetch_orders`` stand for the calls spread over a service's modules: plain
``session.get(...)`` with aiohttp and ``client.get(...)`` with httpx, left exactly as they were.
Only ``make_session`` and ``make_client`` changed: the session and the client now run our
middlewares. The local server on 127.0.0.1 prints what arrives (the remaining deadline, the
priority, the attempt number); its endpoints fail the first call for each id with 503, so the
retries show. The httpx half is skipped when httpx is not installed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web

import aio_pipeline as ap
from aio_pipeline.adapters.aiohttp_client import aiohttp_client_middlewares
from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.priority import ClientPriority
from aio_pipeline.middlewares.strategy import PerCallStrategy
from aio_pipeline.middlewares.wire import SystemHeaders

# --- the existing code, unchanged --------------------------------------------------------------


async def fetch_user(session: aiohttp.ClientSession, base_url: str, user_id: int) -> Any:
    async with session.get(f"{base_url}/users/{user_id}") as response:
        response.raise_for_status()
        return await response.json()


async def fetch_orders(client: Any, base_url: str, user_id: int) -> Any:  # client: httpx.AsyncClient
    response = await client.get(f"{base_url}/orders/{user_id}")
    response.raise_for_status()
    return response.json()


# --- the one line that changed in each ----------------------------------------------------------


def stack() -> list[ap.Middleware[ap.Request, ap.Response]]:
    """Deadline (2 s unless the context gives one), priority, up to 3 attempts, a breaker, headers."""
    breaker = ap.DefaultCircuitBreaker[str, ap.Response](
        break_duration=5.0, sampling_duration=10.0, minimum_throughput=10, failure_threshold=0.5
    )
    retry = ap.SequentialStrategy(attempts_count=3, delays_provider=ap.constant_delays(delay=0.05))
    return [
        ClientDeadline(timeout=2.0),
        ClientPriority(),
        PerCallStrategy(retry),
        CircuitBreakerMiddleware(breaker),
        SystemHeaders(),
    ]


def make_session() -> aiohttp.ClientSession:
    # was: return aiohttp.ClientSession()
    return aiohttp.ClientSession(middlewares=aiohttp_client_middlewares(stack()))


def make_client() -> Any:
    import httpx

    from aio_pipeline.adapters.httpx_transport import HttpxPipelineTransport

    # was: return httpx.AsyncClient()
    return httpx.AsyncClient(transport=HttpxPipelineTransport(stack()))


# --- a local server that shows what arrives -----------------------------------------------------


def make_app() -> web.Application:
    seen: set[str] = set()

    async def answer(request: web.Request) -> web.Response:
        headers = request.headers
        status = 200 if request.path in seen else 503  # the first call for each id fails
        seen.add(request.path)
        print(
            f"  server: {request.method} {request.path:<10} attempt {headers.get('X-Request-Attempt')}"
            f"  timeout {headers.get('X-Request-Timeout')}  priority {headers.get('X-Request-Priority')}  -> {status}"
        )
        if status != 200:
            return web.Response(status=status, text="try again")
        kind, _, number = request.path.strip("/").partition("/")
        return web.json_response({"id": int(number), "kind": kind})

    app = web.Application()
    app.router.add_get("/users/{id}", answer)
    app.router.add_get("/orders/{id}", answer)
    return app


async def main() -> None:
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    print(f"server listening on {base_url}")
    try:
        async with make_session() as session:
            # In a service, the server middlewares set this context for each inbound request.
            print("aiohttp: fetch_user(1) while handling a request with 1.5 s left, priority high")
            with ap.set_context(deadline=ap.Deadline.from_timeout(1.5), priority=ap.Priority.HIGH):
                print(f"  -> {await fetch_user(session, base_url, 1)}")
            print("aiohttp: fetch_user(2) outside any request: the default 2 s, priority normal")
            print(f"  -> {await fetch_user(session, base_url, 2)}")
        try:
            client = make_client()
        except ImportError:
            print("httpx: not installed, skipped (pip install 'aio-pipeline[httpx]')")
            return
        async with client:
            print("httpx: fetch_orders(1) while handling a request with 1.5 s left, priority low")
            with ap.set_context(deadline=ap.Deadline.from_timeout(1.5), priority=ap.Priority.LOW):
                print(f"  -> {await fetch_orders(client, base_url, 1)}")
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
