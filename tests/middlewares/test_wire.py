"""The system headers: written per attempt, from the attempt's own fields, at send time."""

from __future__ import annotations

import asyncio
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aio_pipeline import Deadline, Handler, Pipeline, Priority, Request, Response, get
from aio_pipeline.middlewares.wire import SystemHeaders
from aio_pipeline.propagation import timeout_header_value
from aio_pipeline.testing import FakeTransport

URL = "http://service.test/thing"


async def send(request: Request, *middlewares: object) -> Request:
    """The request as the transport received it, after ``middlewares`` and ``SystemHeaders``."""
    transport = FakeTransport([Response(200)])
    await Pipeline(transport, [*middlewares, SystemHeaders()])(request)  # type: ignore[list-item]
    return transport.sent[0].request


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_three_headers_come_from_the_request_fields() -> None:
    request = get(URL).replace(deadline=Deadline.from_timeout(4.98735), priority=Priority.HIGH, attempt=3)
    sent = await send(request)
    assert sent.headers["X-Request-Timeout"] == "4.9873"
    assert sent.headers["X-Request-Priority"] == "high"
    assert sent.headers["X-Request-Attempt"] == "3"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_timeout_is_computed_when_the_request_leaves() -> None:
    async def slow_user_middleware(request: Request, call_next: Handler[Request, Response], /) -> Response:
        await asyncio.sleep(1.5)
        return await call_next(request)

    sent = await send(get(URL).replace(deadline=Deadline.from_timeout(5)), slow_user_middleware)
    assert sent.headers["X-Request-Timeout"] == "3.5000"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_each_attempt_carries_its_own_deadline_and_number() -> None:
    # What a retry or hedging strategy does: call the rest of the chain with changed copies.
    async def two_attempts(request: Request, call_next: Handler[Request, Response], /) -> Response:
        assert request.deadline is not None
        await (await call_next(request.replace(attempt=1, deadline=request.deadline / 2))).close()
        await asyncio.sleep(0.5)
        return await call_next(request.replace(attempt=2, priority=Priority.LOW))

    transport = FakeTransport([Response(503), Response(200)])
    pipeline = Pipeline(transport, [two_attempts, SystemHeaders()])
    await pipeline(get(URL).replace(deadline=Deadline.from_timeout(4), priority=Priority.NORMAL))
    first, second = (sent.request.headers for sent in transport.sent)
    assert (first["X-Request-Timeout"], first["X-Request-Priority"], first["X-Request-Attempt"]) == (
        "2.0000",
        "normal",
        "1",
    )
    assert (second["X-Request-Timeout"], second["X-Request-Priority"], second["X-Request-Attempt"]) == (
        "3.5000",
        "low",
        "2",
    )


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_callers_own_values_are_overwritten_whatever_their_case() -> None:
    request = get(
        URL,
        headers=[
            ("x-request-timeout", "3600"),
            ("X-REQUEST-PRIORITY", "high"),
            ("X-Request-Attempt", "7"),
            ("X-Request-Attempt", "8"),
            ("Authorization", "Bearer t"),
        ],
    ).replace(deadline=Deadline.from_timeout(1), priority=Priority.LOW)
    sent = await send(request)
    assert sent.headers.getall("X-Request-Timeout") == ["1.0000"]
    assert sent.headers.getall("X-Request-Priority") == ["low"]
    assert sent.headers.getall("X-Request-Attempt") == ["1"]
    assert sent.headers["Authorization"] == "Bearer t"


@pytest.mark.asyncio
async def test_without_a_deadline_or_priority_only_the_attempt_is_written() -> None:
    sent = await send(get(URL, headers={"X-Request-Timeout": "9"}))
    assert "X-Request-Timeout" not in sent.headers  # a caller's value would overstate: dropped
    assert "X-Request-Priority" not in sent.headers
    assert sent.headers["X-Request-Attempt"] == "1"


@pytest.mark.asyncio
async def test_the_switch_turns_all_three_off_and_leaves_the_callers_headers() -> None:
    transport = FakeTransport([Response(200)])
    request = get(URL, headers={"X-Request-Priority": "mine"}).replace(
        deadline=Deadline.from_timeout(1), priority=Priority.HIGH, attempt=2
    )
    await Pipeline(transport, [SystemHeaders(emit_system_headers=False)])(request)
    headers = transport.sent[0].request.headers
    assert "X-Request-Timeout" not in headers
    assert "X-Request-Attempt" not in headers
    assert headers["X-Request-Priority"] == "mine"


@pytest.mark.asyncio
async def test_the_original_request_is_never_changed() -> None:
    request = get(URL).replace(deadline=Deadline.from_timeout(1), priority=Priority.HIGH)
    await send(request)
    assert "X-Request-Timeout" not in request.headers


@pytest.mark.asyncio
async def test_an_expired_deadline_is_written_as_zero() -> None:
    deadline = Deadline.from_timeout(0)
    await asyncio.sleep(0)
    assert timeout_header_value(deadline) == "0.0000"


@pytest.mark.asyncio
@pytest.mark.looptime  # the clock stands still while the value is computed and checked
@given(seconds=st.floats(min_value=0, max_value=1e15, allow_nan=False))
async def test_the_timeout_header_never_overstates_the_time_left(seconds: float) -> None:
    deadline = Deadline(asyncio.get_running_loop().time() + seconds)
    value = timeout_header_value(deadline)
    assert re.fullmatch(r"\d+\.\d{4}", value)
    assert float(value) <= deadline.timeout + 1e-9 * max(1.0, deadline.timeout)
    if seconds < 1e6:  # and is within its last digit of the truth
        assert deadline.timeout - float(value) < 1e-4 + 1e-6


@pytest.mark.asyncio
async def test_a_huge_deadline_is_written_without_overflow() -> None:
    value = timeout_header_value(Deadline(asyncio.get_running_loop().time() + 1e300))
    assert math.isfinite(float(value))
    assert float(value) >= 1e299
