"""Shared fixtures: real servers on 127.0.0.1 and the real transports that talk to them.

- ``server``: an aiohttp application that records every request it receives (``server.seen``)
  and answers on a few well-behaved routes (echo, JSON, redirects, path parameters);
- ``raw_server``: starts plain TCP servers that misbehave byte by byte (stall, truncate, reset);
- ``refused_port``: a URL on 127.0.0.1 where nothing listens;
- ``aiohttp_session``, ``httpx_client`` and ``transport``, the last parametrized over both
  transports (the httpx one is marked ``needs_extras``; httpx is imported only when used).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import test_utils, web
from multidict import CIMultiDictProxy

from aio_pipeline import AioHttpTransport, Transport

if TYPE_CHECKING:
    import httpx

HOST = "127.0.0.1"


# --- the well-behaved aiohttp server ------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One request as the server received it (``path`` and ``match_info`` decoded)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: CIMultiDictProxy[str]
    body: bytes
    match_info: dict[str, str]


@dataclass
class Server:
    """A running ``make_app()`` server: ``url("x")`` is an absolute URL on it."""

    base_url: str
    seen: list[Seen]

    def url(self, path: str = "/") -> str:
        return f"{self.base_url}/{path.lstrip('/')}"


SEEN = web.AppKey("seen", list[Seen])


@web.middleware
async def _record(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    request.app[SEEN].append(
        Seen(
            method=request.method,
            path=request.path,
            query=list(request.query.items()),
            headers=request.headers,
            body=await request.read(),
            match_info=dict(request.match_info),
        )
    )
    return await handler(request)


async def _echo(request: web.Request) -> web.Response:
    """Answers every method with a JSON summary of what arrived (HEAD gets the headers only)."""
    body = await request.read()
    return web.json_response({"method": request.method, "path": request.path, "body": body.decode()})


async def _no_content(request: web.Request) -> web.Response:
    return web.Response(status=204, content_type="application/json")


async def _json_as_text(request: web.Request) -> web.Response:
    """A body that is valid JSON but labelled text/plain."""
    return web.Response(text=json.dumps({"ok": True}), content_type="text/plain")


async def _redirect(request: web.Request) -> web.Response:
    """``/redirect/{n}`` sends to ``/redirect/{n - 1}``; ``/redirect/0`` answers."""
    hops_left = int(request.match_info["hops"])
    if hops_left == 0:
        return web.Response(text="arrived")
    raise web.HTTPFound(f"/redirect/{hops_left - 1}")


def make_app() -> web.Application:
    app = web.Application(middlewares=[_record])
    app[SEEN] = []
    app.router.add_get("/files/{name}", _echo)
    app.router.add_get("/no-content", _no_content)
    app.router.add_get("/json-as-text", _json_as_text)
    app.router.add_get("/redirect/{hops:[0-9]+}", _redirect)
    app.router.add_route("*", "/{tail:.*}", _echo)
    return app


@pytest_asyncio.fixture
async def server() -> AsyncIterator[Server]:
    app = make_app()
    test_server = test_utils.TestServer(app, host=HOST, port=0)
    await test_server.start_server()
    try:
        yield Server(base_url=str(test_server.make_url("")).rstrip("/"), seen=app[SEEN])
    finally:
        await test_server.close()


# --- misbehaving servers, written byte by byte -----------------------------------------------

#: What a raw server does once it has read a request head: write (or not) and return to close.
Respond = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class RawServer:
    """A plain TCP server; ``received`` holds the head of every request it has read."""

    base_url: str
    received: list[bytes] = field(default_factory=list)


StartRawServer = Callable[[Respond], Awaitable[RawServer]]


@pytest_asyncio.fixture
async def raw_server() -> AsyncIterator[StartRawServer]:
    """``await raw_server(respond)`` starts a TCP server on 127.0.0.1. Each connection reads one
    request head, then runs ``respond(reader, writer)``; the connection closes when it returns."""
    servers: list[asyncio.Server] = []
    writers: set[asyncio.StreamWriter] = set()

    async def start(respond: Respond) -> RawServer:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.add(writer)
            try:
                with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                    raw.received.append(await reader.readuntil(b"\r\n\r\n"))
                    await respond(reader, writer)
            finally:
                writers.discard(writer)
                writer.close()

        tcp_server = await asyncio.start_server(on_connect, HOST, 0)
        servers.append(tcp_server)
        raw = RawServer(base_url=f"http://{HOST}:{tcp_server.sockets[0].getsockname()[1]}")
        return raw

    yield start
    for writer in list(writers):  # a client that never hung up must not keep a handler alive
        writer.close()
    for tcp_server in servers:
        tcp_server.close()
        await tcp_server.wait_closed()


@pytest.fixture
def refused_port() -> str:
    """A base URL on 127.0.0.1 whose port was free a moment ago, so connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    return f"http://{HOST}:{port}"


# --- client sessions and transports -------------------------------------------------------------


@pytest_asyncio.fixture
async def aiohttp_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def httpx_client() -> AsyncIterator[httpx.AsyncClient]:
    httpx = pytest.importorskip("httpx")
    # timeout=None: the attempt deadline is the only bound, as in production use.
    async with httpx.AsyncClient(timeout=None) as client:
        yield client


@pytest.fixture(params=["aiohttp", pytest.param("httpx", marks=pytest.mark.needs_extras)])
def transport(request: pytest.FixtureRequest) -> Transport:
    """Each real transport over a fresh client session (closed by its own fixture)."""
    if request.param == "aiohttp":
        return AioHttpTransport(request.getfixturevalue("aiohttp_session"))
    from aio_pipeline.transports.httpx import HttpxTransport

    return HttpxTransport(request.getfixturevalue("httpx_client"))
