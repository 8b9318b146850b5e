"""Fault servers, and a rig that runs a test over each transport and proves nothing was left open.

Every fault is a real TCP server on 127.0.0.1, started on the test's own event loop, that speaks
just enough HTTP/1.1 by hand to misbehave at a chosen byte (keep-alive included):

    refused             nothing listens on the port
    never_answers       reads the request, then says nothing until the client hangs up
    resets_mid_headers  half a header block, then a TCP RST
    stalls_body         the headers and half the body, then silence
    truncates_body      the headers and half the body, then a FIN
    retry_after_3600    503 with ``Retry-After: 3600``
    flaps               odd requests get 503, even ones 200 (``flapping(period)``: by the clock)
    slow                200, but only after ``SLOW_SECONDS``

Servers on the test's loop keep looptime's virtual clock exact: loopback bytes reach the peer
within the ``send()`` call, so the loop is never idle (and the clock never jumps) while an answer
is on its way. Their sleeps are virtual too.

``rig`` is parametrized over both transports (httpx marked ``needs_extras``, imported lazily).
It records the open file descriptors before anything is created, and ``await rig.finish()``
checks, in this order: no connection is still checked out of the client's pool; no task is
alive but the test's own and the fault servers' connection handlers; and, once the servers and
the client are closed, no task at all and exactly the file descriptors of before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from aio_pipeline import AioHttpTransport, Transport

HOST = "127.0.0.1"

#: How long the ``slow`` server takes to answer, in (virtual) seconds: far beyond any deadline here.
SLOW_SECONDS = 10.0

#: ``respond(number, reader, writer)`` answers request ``number`` (1, 2, ... per server) once its
#: head has been read; it returns whether the connection stays open for another request.
Respond = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


def _answer(status: str, body: bytes = b"", headers: tuple[str, ...] = ()) -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


OK = _answer("200 OK", b"ok")
UNAVAILABLE = _answer("503 Service Unavailable", b"down")
#: Headers promising ten bytes, and five of them.
HALF_A_BODY = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"


# --- the faults --------------------------------------------------------------------------------


async def never_answers(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await reader.read()  # until the client hangs up
    return False


async def resets_mid_headers(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/pl")
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST, not FIN
    writer.transport.abort()
    return False


async def stalls_body(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(HALF_A_BODY)
    await reader.read()
    return False


async def truncates_body(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(HALF_A_BODY)
    return False  # hang up with half the body sent


async def retry_after_3600(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(_answer("503 Service Unavailable", b"come back in an hour", ("Retry-After: 3600",)))
    return True


async def unavailable(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Not one of the eight faults: a plain 503 for every request, for the budget's tests."""
    writer.write(UNAVAILABLE)
    return True


async def flaps(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    writer.write(UNAVAILABLE if number % 2 else OK)
    return True


def flapping(period: float) -> Respond:
    """Healthy for ``period`` seconds of the loop's clock, then failing (503) for as long, and so on,
    starting healthy at the moment the server is created."""
    started = asyncio.get_running_loop().time()

    async def respond(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        phase = int((asyncio.get_running_loop().time() - started) / period)
        writer.write(UNAVAILABLE if phase % 2 else OK)
        return True

    return respond


async def slow(number: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await asyncio.sleep(SLOW_SECONDS)
    writer.write(OK)
    return True


@dataclass(frozen=True)
class Fault:
    """A named misbehaviour; ``respond`` is ``None`` for a port where nothing listens."""

    name: str
    respond: Respond | None

    def __str__(self) -> str:
        return self.name


REFUSED = Fault("refused", None)
NEVER_ANSWERS = Fault("never_answers", never_answers)
RESETS_MID_HEADERS = Fault("resets_mid_headers", resets_mid_headers)
STALLS_BODY = Fault("stalls_body", stalls_body)
TRUNCATES_BODY = Fault("truncates_body", truncates_body)
RETRY_AFTER_3600 = Fault("retry_after_3600", retry_after_3600)
FLAPS = Fault("flaps", flaps)
SLOW = Fault("slow", slow)


# --- the server --------------------------------------------------------------------------------


@dataclass(eq=False)
class FaultServer:
    """A running fault server; ``arrivals`` holds the loop time at which each request arrived."""

    base_url: str
    arrivals: list[float] = field(default_factory=list)
    #: The connection handlers alive now: the only tasks a test may find besides its own.
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _server: asyncio.Server | None = None

    @classmethod
    async def start(cls, respond: Respond) -> FaultServer:
        server = cls(base_url="")

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            server.tasks.add(task)
            server._writers.add(writer)
            try:
                # Cancelled only by close(): the handler then ends quietly, as a server's would
                # (asyncio logs a connection callback that ends cancelled as an error).
                with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                    while True:
                        await reader.readuntil(b"\r\n\r\n")  # a GET: the head is the whole request
                        server.arrivals.append(asyncio.get_running_loop().time())
                        if not await respond(len(server.arrivals), reader, writer):
                            break
                        await writer.drain()
            finally:
                server._writers.discard(writer)
                writer.close()
                server.tasks.discard(task)

        server._server = await asyncio.start_server(on_connect, HOST, 0)
        server.base_url = f"http://{HOST}:{server._server.sockets[0].getsockname()[1]}/"
        return server

    async def close(self) -> None:
        """Stop listening, hang up on every client and wait for every handler to end."""
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None


def refused_url() -> str:
    """A base URL on 127.0.0.1 whose port was free a moment ago, so connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return f"http://{HOST}:{sock.getsockname()[1]}/"


# --- leak accounting -----------------------------------------------------------------------------


def open_fds() -> set[tuple[int, str]]:
    """This process's open file descriptors, each with what it points to (``socket:[inode]``...),
    so that a socket closed and another opened under the same number still shows as a change."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the directory's own descriptor, gone by now
            fds.add((int(name), os.readlink(f"/proc/self/fd/{name}")))
    return fds


@dataclass(eq=False)
class Rig:
    """One transport over a fresh client, the fault servers of the test, and what was open before."""

    transport_name: str
    transport: Transport
    client: Any  # aiohttp.ClientSession | httpx.AsyncClient
    fds_before: set[tuple[int, str]]
    servers: list[FaultServer] = field(default_factory=list)
    finished: bool = False

    async def serve(self, fault: Fault | Respond) -> str:
        """Start a server for ``fault`` (a ``Fault`` or a bare ``Respond``); its base URL."""
        respond = fault.respond if isinstance(fault, Fault) else fault
        if respond is None:
            return refused_url()
        server = await FaultServer.start(respond)
        self.servers.append(server)
        return server.base_url

    @property
    def arrivals(self) -> list[float]:
        """When each request reached any of this test's servers (loop time), in order."""
        return sorted(at for server in self.servers for at in server.arrivals)

    @property
    def requests(self) -> int:
        """How many requests reached this test's servers."""
        return len(self.arrivals)

    def checked_out(self) -> int:
        """Connections the client's pool has handed out and not got back (or, for httpx, that are
        busy with a request). Neither library has a public API for it, so this reads their
        private state: aiohttp's ``connector._acquired``, httpcore's pool and its connections."""
        if self.transport_name == "aiohttp":
            connector = self.client.connector
            assert connector is not None
            return len(connector._acquired)
        pool = self.client._transport._pool
        busy = [c for c in pool.connections if not (c.is_idle() or c.is_closed())]
        return len(busy) + len(pool._requests)

    async def finish(self) -> None:
        """Assert that the call left nothing behind, closing servers and client on the way."""
        assert self.checked_out() == 0, "a connection is still checked out of the pool"
        current = asyncio.current_task()
        server_tasks = set().union(*(server.tasks for server in self.servers))
        strays = asyncio.all_tasks() - {current} - server_tasks
        assert not strays, f"tasks outlived the call: {strays}"
        await self._close()
        fds = open_fds()
        for _ in range(100):  # a closed transport lets go of its socket on a later loop iteration
            if fds == self.fds_before:
                break
            await asyncio.sleep(0)
            fds = open_fds()
        assert asyncio.all_tasks() == {current}
        assert fds - self.fds_before == set(), "file descriptors left open"
        assert self.fds_before - fds == set(), "file descriptors closed that were not ours"

    async def _close(self) -> None:
        if self.finished:
            return
        self.finished = True
        for server in self.servers:
            await server.close()
        if self.transport_name == "aiohttp":
            await self.client.close()
        else:
            await self.client.aclose()


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


@pytest_asyncio.fixture(params=["aiohttp", pytest.param("httpx", marks=pytest.mark.needs_extras)])
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    fds_before = open_fds()  # before the client or any server exists
    transport: Transport
    if request.param == "aiohttp":
        client: Any = aiohttp.ClientSession()
        transport = AioHttpTransport(client)
    else:
        httpx = pytest.importorskip("httpx")
        from aio_pipeline import HttpxTransport

        # timeout=None: the deadline is the only bound, as in production. One SSL context for
        # every test (these are plain-HTTP calls): building one per client costs 20 ms.
        client = httpx.AsyncClient(timeout=None, verify=_ssl_context())
        transport = HttpxTransport(client)
    rig = Rig(request.param, transport, client, fds_before)
    try:
        yield rig
    finally:
        await rig._close()  # a test that failed before finish() still closes what it opened
