"""Deadline and priority across two hops, with real servers on 127.0.0.1.

    edge client ──(deadline 2 s, priority)──▶ service A ──(no explicit deadline)──▶ service B

Both services run ``aiohttp_middleware_factory()``; A's handler calls B through a ``Client`` whose
pipeline is ``ClientDeadline → ClientPriority → SystemHeaders → AioHttpTransport``, passing no
deadline and no priority: whatever B sees, A inherited. Every process clock here is the same
loop clock, so "the truth" (the time really left at each hop) is known exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from aio_pipeline import (
    AioHttpTransport,
    Client,
    Deadline,
    DeadlineExceededError,
    Pipeline,
    Priority,
    aiohttp_middleware_factory,
    get,
)
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.priority import ClientPriority
from aio_pipeline.middlewares.wire import SystemHeaders
from aio_pipeline.propagation import Context, get_context, set_context

HOST = "127.0.0.1"
#: How far a header may be from the time really left at the hop that receives it.
FEW_MS = 0.005


@dataclass(frozen=True)
class Hop:
    """What one service saw of one request, and when (loop clock)."""

    timeout: float | None
    priority: str | None
    attempt: str | None
    received_at: float
    context: Context

    @classmethod
    def of(cls, request: web.Request) -> Hop:
        header = request.headers.get("X-Request-Timeout")
        return cls(
            timeout=None if header is None else float(header),
            priority=request.headers.get("X-Request-Priority"),
            attempt=request.headers.get("X-Request-Attempt"),
            received_at=asyncio.get_running_loop().time(),
            context=get_context(),
        )


def pipeline(session: aiohttp.ClientSession) -> Pipeline:
    return Pipeline(AioHttpTransport(session), [ClientDeadline(), ClientPriority(), SystemHeaders()])


def service_b(seen: list[Hop], *, work: float = 0.0) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        seen.append(Hop.of(request))
        await asyncio.sleep(work)
        return web.json_response({"service": "b"})

    app = web.Application(middlewares=[aiohttp_middleware_factory()])
    app.router.add_get("/b", handle)
    return app


def service_a(seen: list[Hop], b: Client, *, work: float = 0.0, explicit: float | None = None) -> web.Application:
    """A records what it got, works for ``work`` seconds, then calls B (with an explicit
    deadline of ``explicit`` seconds if given) and reports how that call ended."""

    async def handle(request: web.Request) -> web.Response:
        seen.append(Hop.of(request))
        await asyncio.sleep(work)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = None if explicit is None else Deadline.from_timeout(explicit)
        try:
            async with b.request(get("b"), deadline=deadline) as response:
                return web.json_response({"b": response.status})
        except DeadlineExceededError:
            return web.json_response({"b": "deadline exceeded", "after": loop.time() - started})

    app = web.Application(middlewares=[aiohttp_middleware_factory()])
    app.router.add_get("/a", handle)
    return app


@asynccontextmanager
async def running(app: web.Application) -> AsyncIterator[str]:
    async with TestServer(app, host=HOST) as server:
        yield str(server.make_url("/"))


@asynccontextmanager
async def two_services(
    *, a_work: float = 0.0, b_work: float = 0.0, explicit: float | None = None
) -> AsyncIterator[tuple[Client, list[Hop], list[Hop]]]:
    """The edge client (to A) and what A and B saw."""
    a_seen: list[Hop] = []
    b_seen: list[Hop] = []
    async with aiohttp.ClientSession() as session, running(service_b(b_seen, work=b_work)) as b_url:
        b = Client(b_url, pipeline(session))
        async with running(service_a(a_seen, b, work=a_work, explicit=explicit)) as a_url:
            yield Client(a_url, pipeline(session)), a_seen, b_seen


async def call(client: Client, **options: Any) -> Any:
    async with client.request(get("a"), **options) as response:
        assert response.status == 200
        return await response.json()


# --- the deadline shrinks -----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_deadline_shrinks_hop_by_hop_on_a_virtual_clock() -> None:
    async with two_services(a_work=0.25) as (edge, a_seen, b_seen):
        deadline = Deadline.from_timeout(2)
        await asyncio.sleep(0.1)  # the edge spends a little of its budget before calling
        assert await call(edge, deadline=deadline) == {"b": 200}
    [a], [b] = a_seen, b_seen
    assert a.timeout is not None
    assert b.timeout is not None
    assert b.timeout < a.timeout < 2
    assert a.timeout == pytest.approx(deadline.deadline_at - a.received_at, abs=FEW_MS)
    assert a.context.deadline is not None
    assert b.timeout == pytest.approx(a.context.deadline.deadline_at - b.received_at, abs=FEW_MS)
    # On the virtual clock nothing but the sleeps takes time: the headers are exact.
    assert a.timeout == pytest.approx(1.9)
    assert b.timeout == pytest.approx(1.65)
    assert (a.attempt, b.attempt) == ("1", "1")


@pytest.mark.asyncio
async def test_the_deadline_shrinks_hop_by_hop_on_the_real_clock() -> None:
    # No sleeps: the only time spent is real work (HTTP parsing, the pipelines, loopback),
    # which a loaded machine can stretch, so each header is checked against the interval in
    # which it was written: after the hop before started, before this hop received it.
    loop = asyncio.get_running_loop()
    async with two_services() as (edge, a_seen, b_seen):
        deadline = Deadline.from_timeout(2)
        started = loop.time()
        await call(edge, deadline=deadline)
    [a], [b] = a_seen, b_seen
    assert a.timeout is not None
    assert b.timeout is not None
    assert a.context.deadline is not None
    assert b.timeout < a.timeout < 2
    truncation = 1e-4  # the header is truncated to 0.1 ms
    assert deadline.deadline_at - a.received_at - truncation <= a.timeout <= deadline.deadline_at - started
    a_deadline = a.context.deadline.deadline_at
    assert a_deadline - b.received_at - truncation <= b.timeout <= a_deadline - a.received_at


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_without_any_deadline_the_first_server_default_propagates() -> None:
    async with two_services(a_work=1) as (edge, a_seen, b_seen), edge.request(get("a")) as response:
        assert response.status == 200  # the edge had no deadline: its own default, 20 s
    assert a_seen[0].timeout == pytest.approx(20)
    assert b_seen[0].timeout == pytest.approx(19)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_deadline_set_with_set_context_at_the_edge_propagates_too() -> None:
    async with two_services(a_work=0.5) as (edge, a_seen, b_seen):
        with set_context(deadline=Deadline.from_timeout(3), priority=Priority.LOW):
            await call(edge)
    assert a_seen[0].timeout == pytest.approx(3)
    assert b_seen[0].timeout == pytest.approx(2.5)
    assert (a_seen[0].priority, b_seen[0].priority) == ("low", "low")


# --- an explicit deadline cannot extend an inherited one ----------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_explicit_longer_deadline_inside_a_short_inherited_one_gets_the_shorter() -> None:
    # The edge sends 0.5 s as a raw header (so it waits for A's answer whatever happens); A
    # asks for 30 s explicitly when calling B, which would take 1 s.
    async with (
        two_services(a_work=0.1, b_work=1, explicit=30) as (edge, a_seen, b_seen),
        aiohttp.ClientSession() as raw,
        raw.get(f"{edge.endpoint}a", headers={"X-Request-Timeout": "0.5"}) as response,
    ):
        answer = await response.json()
    assert a_seen[0].timeout == pytest.approx(0.5)
    assert b_seen[0].timeout == pytest.approx(0.4)  # sent: the shorter, inherited one
    assert answer["b"] == "deadline exceeded"  # enforced: A gave up on B when it ran out
    assert answer["after"] == pytest.approx(0.4, abs=FEW_MS)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_explicit_shorter_deadline_is_kept() -> None:
    async with two_services(explicit=0.25) as (edge, _, b_seen):
        await call(edge, deadline=Deadline.from_timeout(2))
    assert b_seen[0].timeout == pytest.approx(0.25)


# --- priority is forwarded ----------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("sent", "expected"),
    [(Priority.HIGH, "high"), (Priority.LOW, "low"), (Priority.NORMAL, "normal"), (None, "normal")],
)
async def test_priority_reaches_every_hop(sent: Priority | None, expected: str) -> None:
    async with two_services() as (edge, a_seen, b_seen):
        await call(edge, deadline=Deadline.from_timeout(2), priority=sent)
    [a], [b] = a_seen, b_seen
    assert (a.priority, b.priority) == (expected, expected)
    assert a.context.priority is Priority(expected)
    assert b.context.priority is Priority(expected)
