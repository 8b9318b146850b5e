"""A custom pipeline, assembled by hand from ``middlewares/``, plus company-specific middleware.

Run: python examples/custom_pipeline.py  (exits 0; takes well under a second)

The client, outermost first (what ``setup()`` builds, minus the synthetic responses)::

    ClientDeadline ─▶ ClientPriority ─▶ PerCallStrategy(SequentialStrategy) ─▶ CircuitBreakerMiddleware
        ─▶ add_auth_token (yours, per attempt) ─▶ forward_tenant (yours) ─▶ SystemHeaders ─▶ AioHttpTransport

The server, outermost first::

    ServerDeadline ─▶ ServerPriority ─▶ TenantFromHeader (yours) ─▶ the aiohttp handler

Both sides use the same middleware shape, ``(request, call_next) -> response``. The tenant id
that arrives at the "gateway" service is put into a contextvar by the server middleware and
written into every outbound call by the client middleware, with no code in the handler.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

import aio_pipeline as ap
from aio_pipeline import Handler, Request, Response
from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware
from aio_pipeline.middlewares.deadline import ClientDeadline, ServerDeadline
from aio_pipeline.middlewares.priority import ClientPriority, ServerPriority
from aio_pipeline.middlewares.retry import SequentialStrategy
from aio_pipeline.middlewares.strategy import PerCallStrategy
from aio_pipeline.middlewares.wire import SystemHeaders
from aio_pipeline.server.aiohttp import aiohttp_handler_timeout, aiohttp_server_middleware

TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant", default=None)
BACKEND = web.AppKey("backend", ap.Client)


# --- company-specific middleware -----------------------------------------------------------------


async def add_auth_token(request: Request, call_next: Handler[Request, Response], /) -> Response:
    """Per attempt: a fresh token on every attempt (a retry after 401 would get a new one)."""
    return await call_next(request.update_headers({"Authorization": f"Bearer token-for-attempt-{request.attempt}"}))


async def forward_tenant(request: Request, call_next: Handler[Request, Response], /) -> Response:
    """Per attempt: the tenant of the request being handled travels to every call it makes."""
    tenant = TENANT.get()
    return await call_next(request.update_headers({"X-Tenant-Id": tenant}) if tenant else request)


async def tenant_from_header(request: web.Request, call_next: Callable[[web.Request], Awaitable[Any]], /) -> Any:
    """Server side: read the tenant into the context for the handler (and its outbound calls)."""
    token = TENANT.set(request.headers.get("X-Tenant-Id"))
    try:
        return await call_next(request)
    finally:
        TENANT.reset(token)


# --- the two services ---------------------------------------------------------------------------


def server_app() -> web.Application:
    stack = [ServerDeadline(handler_timeout=aiohttp_handler_timeout), ServerPriority(), tenant_from_header]
    return web.Application(middlewares=[aiohttp_server_middleware(stack)])


def make_backend() -> web.Application:
    flaky = {"calls": 0}

    async def report(request: web.Request) -> web.Response:
        flaky["calls"] += 1
        if flaky["calls"] == 1:
            return web.Response(status=503)  # the first call fails: the strategy retries it
        keys = ("X-Tenant-Id", "Authorization", "X-Request-Attempt", "X-Request-Priority", "X-Request-Timeout")
        return web.json_response({key: request.headers.get(key) for key in keys})

    app = server_app()
    app.router.add_get("/report", report)
    return app


def make_gateway() -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        async with request.app[BACKEND].request(ap.get("report")) as response:  # no deadline, no tenant
            return web.json_response(await response.json())

    app = server_app()
    app.router.add_get("/", handle)
    return app


def client_pipeline(session: aiohttp.ClientSession) -> ap.Pipeline:
    breaker = ap.DefaultCircuitBreaker[str, Any](
        break_duration=5.0, sampling_duration=10.0, minimum_throughput=10, failure_threshold=0.5
    )
    return ap.Pipeline(
        ap.AioHttpTransport(session),
        [
            ClientDeadline(timeout=5.0),
            ClientPriority(),
            PerCallStrategy(SequentialStrategy(attempts_count=3, delays_provider=ap.constant_delays(delay=0.01))),
            CircuitBreakerMiddleware(breaker),
            add_auth_token,
            forward_tenant,
            SystemHeaders(),
        ],
    )


async def start(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/"


async def main() -> None:
    async with aiohttp.ClientSession() as session:
        backend_runner, backend_url = await start(make_backend())
        gateway = make_gateway()
        gateway[BACKEND] = ap.Client(backend_url, client_pipeline(session))
        gateway_runner, gateway_url = await start(gateway)
        try:
            print(f"pipeline: {client_pipeline(session)!r}")
            headers = {"X-Tenant-Id": "acme", "X-Request-Timeout": "2.5", "X-Request-Priority": "high"}
            async with session.get(gateway_url, headers=headers) as response:
                seen = await response.json()
            print("edge -> gateway with tenant acme, 2.5 s, high; the backend saw (on its 2nd attempt):")
            for key, value in seen.items():
                print(f"  {key:<20} {value}")
            assert seen["X-Tenant-Id"] == "acme" and seen["X-Request-Attempt"] == "2"
        finally:
            await gateway_runner.cleanup()
            await backend_runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
