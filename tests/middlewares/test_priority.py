"""Priority, client and server side: explicit, inherited, default; the tolerant header."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aio_pipeline import Client, Deadline, Headers, Pipeline, Priority, Response, get
from aio_pipeline.middlewares import SystemHeaders
from aio_pipeline.middlewares.priority import ClientPriority, ServerPriority
from aio_pipeline.propagation import Context, get_context, set_context
from aio_pipeline.testing import FakeTransport

ENDPOINT = "http://service.test/"


async def sent_priority(
    middleware: ClientPriority, *, explicit: Priority | None = None, inherited: Priority | None = None
) -> Priority | None:
    transport = FakeTransport([Response(200)])
    client = Client(ENDPOINT, Pipeline(transport, [middleware, SystemHeaders()]))
    with set_context(priority=inherited):
        async with client.request(get("thing"), priority=explicit):
            pass
    return transport.sent[0].request.priority


# --- client -------------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("explicit", "inherited", "expected"),
    [
        (None, None, Priority.NORMAL),
        (None, Priority.HIGH, Priority.HIGH),  # an inbound HIGH is forwarded as is
        (None, Priority.LOW, Priority.LOW),  # and so is an inbound LOW
        (Priority.LOW, Priority.HIGH, Priority.LOW),  # explicit beats inherited
        (Priority.HIGH, None, Priority.HIGH),
    ],
)
async def test_explicit_else_inherited_else_default(
    explicit: Priority | None, inherited: Priority | None, expected: Priority
) -> None:
    assert await sent_priority(ClientPriority(), explicit=explicit, inherited=inherited) is expected


@pytest.mark.asyncio
async def test_the_default_is_configurable() -> None:
    assert await sent_priority(ClientPriority(default=Priority.LOW)) is Priority.LOW
    assert await sent_priority(ClientPriority(default=Priority.LOW), inherited=Priority.HIGH) is Priority.HIGH


@pytest.mark.parametrize("bad", ["high", None, 1])
def test_a_default_that_is_not_a_priority_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="default"):
        ClientPriority(default=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="default"):
        ServerPriority(default=bad)  # type: ignore[arg-type]


# --- server -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    headers: Mapping[str, str]


async def handler_priority(middleware: ServerPriority, header: str | None) -> Priority | None:
    seen: list[Context] = []

    async def handler(request: Inbound) -> None:
        seen.append(get_context())

    headers = Headers({} if header is None else {"X-REQUEST-PRIORITY": header})
    await middleware(Inbound(headers), handler)
    assert get_context() == Context()  # restored after the handler
    return seen[0].priority


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("high", Priority.HIGH),
        ("HIGH", Priority.HIGH),
        ("  Low\t", Priority.LOW),
        ("normal", Priority.NORMAL),
        ("urgent", Priority.NORMAL),
        ("", Priority.NORMAL),
        ("1", Priority.NORMAL),
        (None, Priority.NORMAL),
    ],
)
async def test_the_header_is_read_case_insensitively_and_unknown_values_are_ignored(
    header: str | None, expected: Priority
) -> None:
    assert await handler_priority(ServerPriority(), header) is expected


@pytest.mark.asyncio
async def test_the_server_default_is_configurable() -> None:
    assert await handler_priority(ServerPriority(default=Priority.LOW), None) is Priority.LOW
    assert await handler_priority(ServerPriority(default=Priority.LOW), "bogus") is Priority.LOW
    assert await handler_priority(ServerPriority(default=Priority.LOW), "high") is Priority.HIGH


@pytest.mark.asyncio
async def test_the_server_keeps_the_inherited_deadline_it_does_not_own() -> None:
    deadline = Deadline.from_timeout(5)
    with set_context(deadline=deadline):
        seen: list[Context] = []

        async def handler(request: Inbound) -> None:
            seen.append(get_context())

        await ServerPriority()(Inbound(Headers({"X-Request-Priority": "low"})), handler)
    assert seen == [Context(deadline=deadline, priority=Priority.LOW)]


@pytest.mark.asyncio
@given(header=st.one_of(st.text(), st.sampled_from(["high", "normal", "low"]).map(lambda p: f" {p.upper()} ")))
async def test_any_header_gives_the_handler_a_priority(header: str) -> None:
    known = header.strip().lower() in {"high", "normal", "low"}
    expected = Priority(header.strip().lower()) if known else Priority.NORMAL
    assert await handler_priority(ServerPriority(), header) is expected
