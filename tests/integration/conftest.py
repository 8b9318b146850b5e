"""A real aiohttp backend on 127.0.0.1 for the strategy tests, with server-side counters.

Its latencies are ``asyncio.sleep`` calls, so under ``@pytest.mark.looptime`` they are virtual:
exact and independent of the machine. Its randomness is seeded, so every run is the same run.

- ``/flaky``: 503 for 30% of requests, else 200;
- ``/tail``: 200 after 200 ms for 5% of requests, else after 2 ms (a heavy tail);
- ``/slow``: 200 after 1 s, always.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import ClassVar

import pytest_asyncio
from aiohttp import test_utils, web


@dataclass
class Backend:
    """The running server. ``received`` counts requests per route as they arrive; ``answered``
    counts ``(route, status)`` for the handlers that ran to the end; ``in_flight`` counts the
    handlers still running (``idle`` is set when there are none). Tests read the constants from
    the fixture, because conftest modules are not imported by name."""

    FLAKY_FAILURE_RATE: ClassVar[float] = 0.3
    TAIL_RATE: ClassVar[float] = 0.05
    TAIL_SECONDS: ClassVar[float] = 0.2
    FAST_SECONDS: ClassVar[float] = 0.002
    SLOW_SECONDS: ClassVar[float] = 1.0

    endpoint: str
    rng: random.Random
    received: Counter[str] = field(default_factory=Counter)
    answered: Counter[tuple[str, int]] = field(default_factory=Counter)
    in_flight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/flaky", self._flaky)
        app.router.add_get("/tail", self._tail)
        app.router.add_get("/slow", self._slow)
        return app

    async def _answer(self, route: str, seconds: float, status: int) -> web.Response:
        self.received[route] += 1
        self.in_flight += 1
        self.idle.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self.idle.set()
        self.answered[route, status] += 1
        return web.Response(status=status, text=route)

    async def _flaky(self, request: web.Request) -> web.Response:
        return await self._answer("flaky", 0.0, 503 if self.rng.random() < self.FLAKY_FAILURE_RATE else 200)

    async def _tail(self, request: web.Request) -> web.Response:
        slow = self.rng.random() < self.TAIL_RATE
        return await self._answer("tail", self.TAIL_SECONDS if slow else self.FAST_SECONDS, 200)

    async def _slow(self, request: web.Request) -> web.Response:
        return await self._answer("slow", self.SLOW_SECONDS, 200)


@pytest_asyncio.fixture
async def backend() -> AsyncIterator[Backend]:
    backend = Backend(endpoint="", rng=random.Random(20240501))
    server = test_utils.TestServer(backend.app(), host="127.0.0.1")
    await server.start_server()
    backend.endpoint = str(server.make_url("/"))
    try:
        yield backend
    finally:
        await server.close()
