"""Python function calls per request, as cProfile counts them: deterministic, so unlike CPU time
it does not move with a noisy neighbour, and a change that adds work to the hot path shows.

    python -m benchmarks.calls [--loop asyncio|uvloop] [--requests 2000]

Client side: each variant makes its requests against the benchmark server (another process), at
concurrency 1 and 64, after a warm-up; the count is every call the profiler sees in the client
process (our layers, aiohttp, asyncio's loop) divided by the requests. Server side: the same
aiohttp application bare and with the server stacks, each in a process of its own, profiled
while it answers a steady stream of requests; the count is the server process's calls per request.
Ratios are against raw aiohttp (client) and the bare application (server), from the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

import aio_pipeline as ap

from .run import pinned_cores

Call = Callable[[str], Awaitable[int]]


def counted(profiler: cProfile.Profile) -> int:
    """Every call the profiler saw. Its raw entries, not ``pstats``: that keys functions by file,
    line and name, so the ``__init__`` of every dataclass (all ``<string>:2``) would count once."""
    return sum(entry.callcount for entry in profiler.getstats())


# --- the client stacks --------------------------------------------------------------------------


def _breaker() -> ap.DefaultCircuitBreaker[str, Any]:
    # Present and sampling every attempt, but never opening: its cost is what is measured.
    return ap.DefaultCircuitBreaker(
        break_duration=1.0, sampling_duration=10.0, minimum_throughput=10**9, failure_threshold=1.0
    )


def _registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry()


def raw_aiohttp(session: aiohttp.ClientSession, base: str) -> Call:
    async def call(path: str) -> int:
        async with session.get(base + path, timeout=aiohttp.ClientTimeout(total=5)) as response:
            await response.read()
            return response.status

    return call


def _facade(client: ap.Client) -> Call:
    async def call(path: str) -> int:
        async with client.request(ap.get(path), deadline=ap.Deadline.from_timeout(5)) as response:
            await response.read()
            return response.status

    return call


def setup_full(session: aiohttp.ClientSession, base: str, *, log: bool = False) -> Call:
    """``setup()``: deadline, priority, a single attempt, a circuit breaker, Prometheus metrics on
    a private registry, system headers (and ``ClientLog`` at its default configuration)."""
    return _facade(
        ap.setup(
            transport=ap.AioHttpTransport(session),
            endpoint=base,
            safe_method_strategy=ap.single_attempt_strategy(),
            circuit_breaker=_breaker(),
            metrics_provider=ap.PrometheusMetricsProvider(registry=_registry()),
            call_middlewares=[ap.ClientLog()] if log else [],
        )
    )


def setup_full_logged(session: aiohttp.ClientSession, base: str) -> Call:
    return setup_full(session, base, log=True)


def native_full(session: aiohttp.ClientSession, base: str) -> Call:
    """The same stack assembled by hand with ``Pipeline``, as ``examples/custom_pipeline.py`` does."""
    from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware
    from aio_pipeline.middlewares.deadline import ClientDeadline
    from aio_pipeline.middlewares.priority import ClientPriority
    from aio_pipeline.middlewares.strategy import SingleAttempt
    from aio_pipeline.middlewares.wire import SystemHeaders

    metrics = ap.PrometheusMetricsProvider(registry=_registry())
    pipeline = ap.Pipeline(
        ap.AioHttpTransport(session),
        [
            metrics.client_call_middleware(),
            ClientDeadline(),
            ClientPriority(),
            SingleAttempt(),
            metrics.client_attempt_middleware(),
            CircuitBreakerMiddleware(_breaker()),
            SystemHeaders(),
        ],
    )
    client = ap.Client(base, pipeline)

    async def call(path: str) -> int:
        async with client.request(ap.get(path), deadline=ap.Deadline.from_timeout(5)) as response:
            await response.read()
            return response.status

    return call


def aio_request_single(session: aiohttp.ClientSession, base: str) -> Call | None:
    try:
        import aio_request
    except ImportError:
        return None
    client = aio_request.setup(transport=aio_request.AioHttpTransport(session), endpoint=base)
    strategy = aio_request.single_attempt_strategy()

    async def call(path: str) -> int:
        deadline = aio_request.Deadline.from_timeout(5)
        async with client.request(aio_request.get(path), deadline=deadline, strategy=strategy) as response:
            await response.read()
            return int(response.status)

    return call


CLIENT_VARIANTS: dict[str, Callable[[aiohttp.ClientSession, str], Call | None]] = {
    "raw aiohttp": raw_aiohttp,
    "setup(): full stack": setup_full,
    "Pipeline: the same stack": native_full,
    "setup(): full stack + ClientLog": setup_full_logged,
    "aio-request 0.2.9 setup()": aio_request_single,
}


async def _run(call: Call, requests: int, concurrency: int) -> None:
    remaining = iter(range(requests))

    async def worker() -> None:
        for _ in remaining:
            status = await call("fast")
            assert status == 200, status

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def client_calls(base: str, requests: int) -> dict[str, dict[int, float]]:
    counts: dict[str, dict[int, float]] = {}
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        variants = {name: make(session, base) for name, make in CLIENT_VARIANTS.items()}
        for name, call in variants.items():
            if call is None:
                continue
            for concurrency in (1, 64):
                await _run(call, 300, concurrency)  # warm-up: connections, caches, metric children
                profiler = cProfile.Profile()
                profiler.enable()
                await _run(call, requests, concurrency)
                profiler.disable()
                total = counted(profiler)
                counts.setdefault(name, {})[concurrency] = total / requests
    return counts


# --- the server stacks --------------------------------------------------------------------------

SERVER_VARIANTS = ["bare app", "aiohttp_middleware_factory()", "factory + Prometheus", "aio-request factory"]


def _server_app(variant: str) -> Any:
    from aiohttp import web

    middlewares: list[Any] = []
    if variant == "aiohttp_middleware_factory()":
        middlewares = [ap.aiohttp_middleware_factory()]
    elif variant == "factory + Prometheus":
        provider = ap.PrometheusMetricsProvider(registry=_registry())
        middlewares = [ap.aiohttp_middleware_factory(metrics_provider=provider)]
    elif variant == "aio-request factory":
        import aio_request

        middlewares = [aio_request.aiohttp_middleware_factory()]
    profiler = cProfile.Profile()
    state: dict[str, float] = {}

    async def fast(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def start(request: web.Request) -> web.Response:
        state["cpu"] = time.process_time()
        profiler.enable()
        return web.Response(text="started")

    async def stop(request: web.Request) -> web.Response:
        profiler.disable()
        cpu = time.process_time() - state["cpu"]
        return web.json_response({"calls": counted(profiler), "cpu": cpu})

    app = web.Application(middlewares=middlewares)
    app.router.add_get("/fast", fast)
    app.router.add_get("/profile/start", start)
    app.router.add_get("/profile/stop", stop)
    return app


def serve(variant: str, loop_name: str) -> None:
    """In a process of its own: serve ``variant`` and print its port."""
    from aiohttp import web

    async def main() -> None:
        runner = web.AppRunner(_server_app(variant), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(f"PORT {runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        _run_loop(main(), loop_name)


async def _drive(base: str, requests: int) -> dict[str, float]:
    """Requests at concurrency 8 from a plain aiohttp client; the server profiles them."""
    async with aiohttp.ClientSession() as session:

        async def fast(path: str) -> int:
            async with session.get(base + path) as response:
                await response.read()
                return response.status

        await _run(fast, 500, 8)  # warm-up
        async with session.get(base + "profile/start") as response:
            await response.read()
        await _run(fast, requests, 8)
        async with session.get(base + "profile/stop") as response:
            result: dict[str, float] = await response.json()
    return {"calls": result["calls"] / requests, "cpu_us": result["cpu"] / requests * 1e6}


def server_calls(requests: int, loop_name: str) -> dict[str, dict[str, float]]:
    _, server_core = pinned_cores()
    measured: dict[str, dict[str, float]] = {}
    for variant in SERVER_VARIANTS:
        if variant == "aio-request factory":
            try:
                import aio_request  # noqa: F401
            except ImportError:
                continue
        command = [sys.executable, "-m", "benchmarks.calls", "--serve", variant, "--loop", loop_name]
        server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, preexec_fn=server_core)
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline().split()[1])
            measured[variant] = asyncio.run(_drive(f"http://127.0.0.1:{port}/", requests))
        finally:
            server.terminate()
            server.wait(10)
    return measured


# --- running it ---------------------------------------------------------------------------------


def _run_loop(coroutine: Any, loop_name: str) -> Any:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.loop)
        return
    import logging

    from .variants import _quiet_structlog

    _quiet_structlog()  # ClientLog renders its events, as in production, into /dev/null
    logging.getLogger("aio_request").setLevel(logging.CRITICAL)
    client_core, server_core = pinned_cores()
    client_core()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=server_core,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        client = _run_loop(client_calls(f"http://127.0.0.1:{port}/", args.requests), args.loop)
    finally:
        server.terminate()
        server.wait(10)
    servers = server_calls(args.requests, args.loop)
    if args.json:
        print(json.dumps({"loop": args.loop, "client": client, "server": servers}, indent=2))
        return
    raw = client["raw aiohttp"]
    print(f"client, {args.loop} loop: Python calls per request (x raw aiohttp)\n")
    print("| stack | c=1 | c=64 |\n|---|---|---|")
    for name, counts in client.items():
        cells = [f"{counts[c]:.0f} ({counts[c] / raw[c]:.2f}x)" for c in (1, 64)]
        print(f"| {name} | {' | '.join(cells)} |")
    bare = servers["bare app"]
    print(f"\nserver, {args.loop} loop: per request at c=8 (x the bare app)\n")
    print("| app | Python calls | CPU µs |\n|---|---|---|")
    for name, measured in servers.items():
        calls, cpu = measured["calls"], measured["cpu_us"]
        print(f"| {name} | {calls:.0f} ({calls / bare['calls']:.2f}x) | {cpu:.1f} ({cpu / bare['cpu_us']:.2f}x) |")


if __name__ == "__main__":
    main()
