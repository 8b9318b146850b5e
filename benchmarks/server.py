"""The benchmark server: a separate process on 127.0.0.1 so its CPU never counts as the client's.

    python -m benchmarks.server [--port 0] [--seed 1]

Prints ``PORT <n>`` once listening. Endpoints (all GET):
    /fast                  200 at once
    /tail                  heavy-tailed: 95% of calls ~2 ms, 5% 200 ms (seeded)
    /flaky?p=0.3           503 with probability p (seeded), else 200
    /slow?ms=300           200 after ms milliseconds
    /counters              JSON: requests received per endpoint since the last reset
    /counters/reset        zero the counters
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
from collections import Counter

from aiohttp import web


def make_app(seed: int) -> web.Application:
    rng = random.Random(seed)
    counters: Counter[str] = Counter()

    async def fast(request: web.Request) -> web.Response:
        counters["fast"] += 1
        return web.Response(text="ok")

    async def tail(request: web.Request) -> web.Response:
        counters["tail"] += 1
        await asyncio.sleep(0.2 if rng.random() < 0.05 else 0.002)
        return web.Response(text="ok")

    async def flaky(request: web.Request) -> web.Response:
        counters["flaky"] += 1
        if rng.random() < float(request.query.get("p", "0.3")):
            return web.Response(status=503, text="unavailable")
        return web.Response(text="ok")

    async def slow(request: web.Request) -> web.Response:
        counters["slow"] += 1
        await asyncio.sleep(float(request.query.get("ms", "300")) / 1000)
        return web.Response(text="ok")

    async def get_counters(request: web.Request) -> web.Response:
        return web.json_response(dict(counters))

    async def reset_counters(request: web.Request) -> web.Response:
        counters.clear()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/fast", fast)
    app.router.add_get("/tail", tail)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/slow", slow)
    app.router.add_get("/counters", get_counters)
    app.router.add_get("/counters/reset", reset_counters)
    return app


async def serve(port: int, seed: int) -> None:
    runner = web.AppRunner(make_app(seed), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    print(f"PORT {runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.seed))
