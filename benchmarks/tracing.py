"""What tracing costs: CPU microseconds per call (client) and per request (server), tracing off
and on, in one run.

    python -m benchmarks.tracing

Client: ``setup()``'s full default stack (deadline, priority, single attempt, circuit breaker,
Prometheus metrics on a private registry, system headers) over a transport that answers at once,
as ``benchmarks.overhead`` measures it; tracing is placed where ``setup(tracing=True)`` places it
(the call middleware outermost but for the synthetic responses, the attempt middleware per
attempt, the hooks wired). Server: an aiohttp app on 127.0.0.1 with ``aiohttp_middleware_factory``
answering requests one after another on one kept-alive connection from a raw socket in the same
process; the bare app's cost is subtracted, so the figures are what the middleware adds.

Tracing on is measured twice: with the API alone (no SDK configured: non-recording spans that
still carry the caller's context on) and with the SDK recording every span (``TracerProvider()``
with no exporter, so export cost, which is the exporter's, is left out). Each figure is the best
of ``ROUNDS`` rounds: noise only ever adds. Next to it, Python calls per call or request
(cProfile's count, every call and C built-in: deterministic, so it shows what a change adds even
on a noisy machine).

The server runs on asyncio's own loop; the figures are for CPython as run.
"""

from __future__ import annotations

import asyncio
import cProfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

import aio_pipeline as ap
from aio_pipeline import Request, Response, Transport

CALLS = 20_000
REQUESTS = 3_000
ROUNDS = 5
HOST = "127.0.0.1"


class Immediate(Transport):
    """Answers 200 at once, after building the URL as a real transport would."""

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        request.absolute_url(endpoint)
        return Response(200, request=request)


def providers() -> dict[str, Any]:
    """``None`` (tracing off), the API's no-op provider, and a recording SDK provider."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import NoOpTracerProvider

    return {"off": None, "on, API only (no SDK)": NoOpTracerProvider(), "on, SDK recording": TracerProvider()}


def client(tracer_provider: Any, tracing: bool) -> ap.Client:
    from prometheus_client import CollectorRegistry

    from aio_pipeline.middlewares.tracing import client_tracing_setup

    breaker: ap.DefaultCircuitBreaker[str, Any] = ap.DefaultCircuitBreaker(
        break_duration=1.0, sampling_duration=10.0, minimum_throughput=10**9, failure_threshold=1.0
    )
    metrics: Any = ap.PrometheusMetricsProvider(registry=CollectorRegistry())
    call_middlewares: list[Any] = []
    middlewares: list[Any] = []
    if tracing:
        # setup(tracing=True)'s pieces; as call_middlewares the call middleware sits where setup
        # puts it and setup wires its hooks; the attempt middleware runs once per attempt.
        pieces = client_tracing_setup(tracer_provider=tracer_provider, metrics_provider=metrics)
        metrics = pieces.metrics_provider
        call_middlewares, middlewares = [pieces.call_middleware], [pieces.attempt_middleware]
    return ap.setup(
        transport=Immediate(),
        endpoint="http://127.0.0.1:1/",
        safe_method_strategy=ap.single_attempt_strategy(),
        circuit_breaker=breaker,
        metrics_provider=metrics,
        call_middlewares=call_middlewares,
        middlewares=middlewares,
    )


async def counted(one: Callable[[], Awaitable[None]], times: int = 200) -> float:
    """Python calls per ``one()`` (cProfile's raw entries: every call, C built-ins included)."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(times):
        await one()
    profiler.disable()
    return sum(entry.callcount for entry in profiler.getstats()) / times


async def client_cost(client: ap.Client) -> tuple[float, float]:
    """Microseconds of CPU per call, the best of ``ROUNDS`` rounds; and Python calls per call."""

    async def one() -> None:
        async with client.request(ap.get("fast"), deadline=ap.Deadline.from_timeout(5)):
            pass

    rounds = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(CALLS // ROUNDS):
            await one()
        rounds.append((time.process_time() - started) / (CALLS // ROUNDS) * 1e6)
    return min(rounds), await counted(one)


async def fast(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def server_cost(middlewares: list[Any]) -> tuple[float, float]:
    """Microseconds of CPU per request (server and the raw client together), best of rounds;
    and Python calls per request."""
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/fast", fast)
    server = TestServer(app, host=HOST)
    await server.start_server()
    message = (
        f"GET /fast HTTP/1.1\r\nHost: {HOST}\r\nX-Request-Timeout: 4.9873\r\n"
        "X-Request-Priority: normal\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n"
    ).encode()
    try:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        try:

            async def one() -> None:
                writer.write(message)
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)

            for _ in range(100):
                await one()
            rounds = []
            for _ in range(ROUNDS):
                started = time.process_time()
                for _ in range(REQUESTS // ROUNDS):
                    await one()
                rounds.append((time.process_time() - started) / (REQUESTS // ROUNDS) * 1e6)
            calls = await counted(one)
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        await server.close()
    return min(rounds), calls


async def main() -> None:
    variants = providers()
    servers: dict[str, list[Any]] = {"bare": []}
    for name, provider in variants.items():
        if name == "off":
            servers[name] = [ap.aiohttp_middleware_factory()]
        else:
            servers[name] = [ap.aiohttp_middleware_factory(tracing=True, tracer_provider=provider)]
    await server_cost(servers["bare"])  # warms the loop, the sockets and aiohttp's own caches
    # Interleaved, best of all passes: a slow moment of the machine hits every variant alike.
    server: dict[str, tuple[float, float]] = {}
    for _ in range(3):
        for name, middlewares in servers.items():
            cpu, calls = await server_cost(middlewares)
            server[name] = (min(server.get(name, (cpu, calls))[0], cpu), calls)
    print("| tracing | client: CPU µs per call | calls per call | server: CPU µs per request | calls per request |")
    print("|---|---|---|---|---|")
    bare_cpu, bare_calls = server["bare"]
    for name, provider in variants.items():
        cpu, calls = await client_cost(client(provider, tracing=name != "off"))
        server_cpu, server_calls = server[name]
        print(f"| {name} | {cpu:.1f} | {calls:.0f} | +{server_cpu - bare_cpu:.1f} | +{server_calls - bare_calls:.0f} |")


if __name__ == "__main__":
    asyncio.run(main())
