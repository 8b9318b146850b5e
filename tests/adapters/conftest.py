"""A real aiohttp backend on 127.0.0.1 for the adapter tests, and the usual client stack.

The backend records every request as it arrives (``backend.arrivals``), so tests count attempts
on the server's side. Its latencies are ``asyncio.sleep`` calls: virtual under looptime. Routes,
for any method:

- ``/echo``: 200 ``echo``;
- ``/flaky``: 503 for the first request, 200 ``ok`` for every later one;
- ``/slow``: the first request gets ``slow`` after 1 s, every later one ``fast`` at once;
- ``/down``: 503, always;
- ``/redirect``: 307 to ``/echo``;
- ``/see-other?to=URL``: 303 to ``URL``;
- ``/hops?n=N&s=S``: answers after ``S`` seconds: 302 to ``/hops?n=N-1&s=S`` while ``N > 1``,
  then 200 ``arrived``;
- ``/gzip``: 200 with a gzip-compressed body.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
import pytest_asyncio
from aiohttp import test_utils, web
from multidict import CIMultiDictProxy

from aio_pipeline import Middleware, Request, Response
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.priority import ClientPriority
from aio_pipeline.middlewares.strategy import PerCallStrategy
from aio_pipeline.middlewares.wire import SystemHeaders

SLOW_SECONDS = 1.0


@dataclass(frozen=True)
class Arrival:
    route: str
    method: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class Backend:
    """The running server. Tests read constants from the fixture: conftest is not imported by name."""

    GZIP_TEXT: ClassVar[str] = "compressed " * 100

    base_url: str = ""
    arrivals: list[Arrival] = field(default_factory=list)
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, route: str) -> str:
        return f"{self.base_url}/{route}"

    def count(self, route: str) -> int:
        return sum(arrival.route == route for arrival in self.arrivals)

    def header(self, route: str, name: str) -> list[str | None]:
        """``name`` as each request to ``route`` carried it, in arrival order."""
        return [arrival.headers.get(name) for arrival in self.arrivals if arrival.route == route]

    def bodies(self, route: str) -> list[bytes]:
        return [arrival.body for arrival in self.arrivals if arrival.route == route]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{route}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        route = request.match_info["route"]
        self.arrivals.append(Arrival(route, request.method, request.headers, await request.read()))
        seen = self.count(route)
        if route == "flaky":
            return web.Response(status=503 if seen == 1 else 200, text="ok")
        if route == "down":
            return web.Response(status=503, text="down")
        if route == "redirect":
            raise web.HTTPTemporaryRedirect("/echo")
        if route == "see-other":
            raise web.HTTPSeeOther(request.query["to"])
        if route == "hops":
            left, seconds = int(request.query["n"]), request.query["s"]
            await self._busy(float(seconds))
            if left > 1:
                raise web.HTTPFound(f"/hops?n={left - 1}&s={seconds}")
            return web.Response(text="arrived")
        if route == "gzip":
            response = web.Response(text=self.GZIP_TEXT)
            response.enable_compression(web.ContentCoding.gzip)
            return response
        if route == "slow" and seen == 1:
            await self._busy(SLOW_SECONDS)
            return web.Response(text="slow")
        return web.Response(text="fast" if route == "slow" else "echo")

    async def _busy(self, seconds: float) -> None:
        """Sleep, counted in flight: the fixture lets a handler the client gave up on run out."""
        self.in_flight += 1
        self.idle.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()


@pytest_asyncio.fixture
async def backend() -> AsyncIterator[Backend]:
    backend = Backend()
    backend.idle.set()
    server = test_utils.TestServer(backend.app(), host="127.0.0.1")
    await server.start_server()
    backend.base_url = str(server.make_url("")).rstrip("/")
    try:
        yield backend
    finally:
        await backend.idle.wait()  # a hedged-away handler runs out (virtual time) before the server stops
        await server.close()


Stack = Callable[..., list[Middleware[Request, Response]]]


@pytest.fixture
def stack() -> Stack:
    """``stack(strategy, *more, timeout=20.0)``: the stack the adapters are documented with,
    ``more`` (a breaker, say) going between the strategy and the system headers."""

    def make(strategy: Middleware[Request, Response], *more: Any, timeout: float = 20.0) -> list[Any]:
        return [ClientDeadline(timeout=timeout), ClientPriority(), PerCallStrategy(strategy), *more, SystemHeaders()]

    return make
