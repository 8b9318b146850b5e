"""A scripted server on 127.0.0.1 for the facade's contract tests.

``scripted.plan("thing", (503, 0), (200, 0.2))`` makes the next calls to ``/thing`` answer 503 at
once, then 200 after 0.2 s (virtual under looptime); then 200 at once. ``scripted.hits["thing"]``
counts what arrived and ``scripted.headers["thing"]`` keeps each request's headers.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest_asyncio
from aiohttp import test_utils, web
from multidict import CIMultiDictProxy


@dataclass
class Scripted:
    base_url: str = ""
    plans: dict[str, deque[tuple[int, float]]] = field(default_factory=lambda: defaultdict(deque))
    hits: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    headers: dict[str, list[CIMultiDictProxy[str]]] = field(default_factory=lambda: defaultdict(list))

    def plan(self, path: str, *steps: tuple[int, float]) -> None:
        self.plans[path].extend(steps)

    async def handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        self.hits[path] += 1
        self.headers[path].append(request.headers)
        status, delay = self.plans[path].popleft() if self.plans[path] else (200, 0.0)
        if delay:
            await asyncio.sleep(delay)
        if 300 <= status < 400:
            raise web.HTTPFound(location=f"/{path}")
        return web.json_response({"path": path, "status": status}, status=status)


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[Scripted]:
    state = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", state.handle)
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.base_url = f"http://127.0.0.1:{server.port}/"
    try:
        yield state
    finally:
        await server.close()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session
