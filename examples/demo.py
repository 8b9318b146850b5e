"""The demo: a real local server, a real pipeline, and what happened on each call.

Run: python examples/demo.py  (exits 0; takes about a second)

The server on 127.0.0.1 has three endpoints: /fast answers at once, /flaky fails every other
call with 503, /slow takes 2 s. The client is ``setup()``'s standard pipeline (deadline,
priority, retries for safe methods, circuit breaker, system headers) with two small middlewares
of our own per attempt. Failures come back as synthetic responses (408 for the deadline).
"""

from __future__ import annotations

import asyncio
import time

import aiohttp
from aiohttp import web

import aio_pipeline as ap
from aio_pipeline import Handler, Request, Response


def make_app() -> web.Application:
    calls = {"flaky": 0}

    async def fast(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.query.get("name", "world")})

    async def flaky(request: web.Request) -> web.Response:
        calls["flaky"] += 1
        if calls["flaky"] % 2:
            return web.Response(status=503, text="try again")
        return web.json_response({"ok": True})

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.json_response({"slow": True})

    app = web.Application()
    app.router.add_get("/api/fast", fast)
    app.router.add_get("/api/flaky", flaky)
    app.router.add_get("/api/slow", slow)
    return app


class Timing:
    """A user middleware: counts attempts and times each one (milliseconds)."""

    def __init__(self) -> None:
        self.attempts = 0
        self.last_ms = 0.0

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        self.attempts += 1
        started = time.perf_counter()
        try:
            return await call_next(request)
        finally:
            self.last_ms = (time.perf_counter() - started) * 1000


async def add_service_name(request: Request, call_next: Handler[Request, Response], /) -> Response:
    """A user middleware: every call says who is calling."""
    return await call_next(request.update_headers({"X-Service-Name": "demo"}))


async def call(client: ap.Client, timing: Timing, path: str, timeout: float) -> None:
    before = timing.attempts
    request = ap.get(path, query_parameters={"name": "demo"})
    async with client.request(request, deadline=ap.Deadline.from_timeout(timeout)) as response:
        outcome = (
            f"{response.status} {(await response.text()).strip() or type(getattr(response, 'error', '')).__name__}"
        )
    attempts = timing.attempts - before
    print(f"GET {path:<6} deadline {timeout:>4.1f}s  attempts {attempts}  {timing.last_ms:7.1f} ms  -> {outcome}")


async def main() -> None:
    runner = web.AppRunner(make_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    print(f"server listening on http://127.0.0.1:{port}/api/")
    timing = Timing()
    try:
        async with aiohttp.ClientSession() as session:
            breaker = ap.DefaultCircuitBreaker[str, int](
                break_duration=1.0, sampling_duration=1.0, minimum_throughput=5, failure_threshold=0.5
            )
            client = ap.setup(
                transport=ap.AioHttpTransport(session),
                endpoint=f"http://127.0.0.1:{port}/api/",
                safe_method_strategy=ap.sequential_strategy(
                    attempts_count=3, delays_provider=ap.constant_delays(delay=0.05)
                ),
                circuit_breaker=breaker,
                middlewares=[add_service_name, timing],
            )
            print(f"pipeline: {client.pipeline!r}")
            await call(client, timing, "fast", 1.0)
            await call(client, timing, "flaky", 1.0)
            await call(client, timing, "flaky", 1.0)
            await call(client, timing, "slow", 0.3)
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
