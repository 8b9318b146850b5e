"""A guard on the server's hot path (issue 14): what ``aiohttp_middleware_factory()`` adds to each
request, counted in Python calls, against the same application without it. Not a timed test.

cProfile counts every call made in this process (Python functions and C built-ins alike) while
a real aiohttp server on 127.0.0.1 answers requests one after another on one kept-alive
connection. The client is a raw socket that does the same work for every application, and one
request at a time makes one pass of the event loop per request, so the count is deterministic:
the difference per request is what the middleware costs the server. A change that adds work to
the hot path fails here; raise a budget only with the reason in the commit message.

The measurement runs on asyncio's own event loop, in a thread of its own: the loops pytest gives
tests here are looptime's, whose ``time()`` is one more Python call per clock read.
"""

from __future__ import annotations

import asyncio
import cProfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aio_pipeline import aiohttp_middleware_factory

HOST = "127.0.0.1"
WARM_UP = 50  # the first requests compose the chain per handler and make the label sets
REQUESTS = 200
#: What our clients send (``SystemHeaders``): a well-formed deadline and priority, a caller.
SYSTEM_HEADERS = {"X-Request-Timeout": "4.9873", "X-Request-Priority": "high", "X-Service-Name": "orders"}

# Measured with this test on CPython 3.11.7 and aiohttp 3.14.5, extra calls per request over the
# bare application. 12 of them are aiohttp's own, for having any middleware at all (the handler
# that sets ``match_info.current_app``, the cached chain's key, the ``SystemRoute`` check); the
# rest are ours: the adapter, one step for deadline and priority (headers, the clock, one
# ``Context`` set and reset) and, with Prometheus, the exchange that reports the status sent
# (with the arrival time, the one clock read the deadline and the duration share), the labels
# (kept per route and per caller), the in-flight gauge and one histogram observation.
# The system headers add the parsing of a deadline and a priority.
#
#                          no headers   system headers   (before issue 14's server work)
#   factory                    22            29              61 / 62
#   factory + Prometheus       37            44             100 / 103
#
# The budgets allow two calls of slack for a patch release of aiohttp or CPython.
BUDGETS = {
    ("factory", False): 24,
    ("factory", True): 31,
    ("factory + Prometheus", False): 39,
    ("factory + Prometheus", True): 46,
}


async def fast(request: web.Request) -> web.Response:
    return web.Response(text="ok")


def app_with(middlewares: list[Any]) -> web.Application:
    app = web.Application(middlewares=middlewares)
    app.router.add_get("/fast", fast)
    return app


async def calls_per_request(app: web.Application, headers: dict[str, str]) -> float:
    """Python calls made in this process per request ``app`` answers, over a warm connection."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    message = f"GET /fast HTTP/1.1\r\nHost: {HOST}\r\n{lines}\r\n".encode()
    server = TestServer(app, host=HOST)
    await server.start_server()
    try:
        reader, writer = await asyncio.open_connection(HOST, server.port)
        try:

            async def one() -> bytes:
                writer.write(message)
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)  # b"ok"
                return head

            for _ in range(WARM_UP):
                assert (await one()).startswith(b"HTTP/1.1 200 OK\r\n")
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(REQUESTS):
                await one()
            profiler.disable()
        finally:
            writer.close()
            await writer.wait_closed()
    finally:
        await server.close()
    # getstats(), not pstats: pstats keys functions by file, line and name, so every dataclass
    # __init__ ("<string>", line 2) would count as one function and lose calls.
    return sum(entry.callcount for entry in profiler.getstats()) / REQUESTS


def stack(name: str) -> Any:
    if name == "factory":
        return aiohttp_middleware_factory()
    from prometheus_client import CollectorRegistry

    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    return aiohttp_middleware_factory(metrics_provider=PrometheusMetricsProvider(registry=CollectorRegistry()))


async def extra_calls(name: str, headers: dict[str, str]) -> float:
    """The calls per request of ``name`` over the bare application's, both on this loop."""
    measured = stack(name)  # first: importing prometheus-client adds a gc callback, to the bare app's count too
    bare = await calls_per_request(app_with([]), headers)
    return await calls_per_request(app_with([measured]), headers) - bare


@pytest.mark.parametrize("name", ["factory", pytest.param("factory + Prometheus", marks=pytest.mark.needs_extras)])
@pytest.mark.parametrize("with_headers", [False, True], ids=["no headers", "system headers"])
def test_the_server_stack_stays_within_its_call_budget(name: str, with_headers: bool) -> None:
    if name != "factory":
        pytest.importorskip("prometheus_client")
    headers = SYSTEM_HEADERS if with_headers else {}
    with ThreadPoolExecutor(1) as thread:
        extra = thread.submit(lambda: asyncio.run(extra_calls(name, headers))).result()
    budget = BUDGETS[name, with_headers]
    assert extra <= budget, f"{name}: {extra:.1f} extra calls per request, budget {budget}"
