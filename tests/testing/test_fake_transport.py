"""``FakeTransport``'s scripting helpers: ``respond``, ``fail``, ``hang``, ``otherwise``, and its
record of the responses it gave. (Its core behaviour: ``tests/transports/test_fake.py``.)

Time is virtual (looptime): delays take no real time.
"""

from __future__ import annotations

import asyncio

import pytest

from aio_pipeline import ConnectError, DeadlineExceededError, Response, get, post
from aio_pipeline.testing import FakeTransport, fail, hang, respond

ENDPOINT = "http://127.0.0.1:1/"


def now() -> float:
    return asyncio.get_running_loop().time()


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_respond_answers_a_fresh_response_per_attempt_after_its_delay() -> None:
    step = respond(503, headers={"Retry-After": "1"}, body=b"busy", delay=0.25)
    transport = FakeTransport([step, step])
    first, second = get("a"), get("b")
    started = now()

    one = await transport.send(ENDPOINT, first, None)
    two = await transport.send(ENDPOINT, second, None)

    assert one is not two
    assert [(r.status, r.headers["Retry-After"], await r.read(), r.request) for r in (one, two)] == [
        (503, "1", b"busy", first),
        (503, "1", b"busy", second),
    ]
    assert now() - started == pytest.approx(0.5)
    assert transport.responses == [one, two]


@pytest.mark.asyncio
async def test_fail_with_a_library_error_class_raises_a_fresh_one_carrying_the_request() -> None:
    transport = FakeTransport(otherwise=fail(ConnectError))
    request = post("orders")

    with pytest.raises(ConnectError) as first:
        await transport.send(ENDPOINT, request, None)
    with pytest.raises(ConnectError) as second:
        await transport.send(ENDPOINT, request, None)

    assert first.value is not second.value
    assert first.value.request is request
    assert str(first.value) == "scripted failure"
    assert transport.responses == []


@pytest.mark.asyncio
async def test_fail_with_any_other_class_or_an_instance() -> None:
    once = OSError("reset")
    transport = FakeTransport([fail(RuntimeError), fail(once)])

    with pytest.raises(RuntimeError, match=r"^scripted failure$"):
        await transport.send(ENDPOINT, get("a"), None)
    with pytest.raises(OSError, match="reset") as raised:
        await transport.send(ENDPOINT, get("a"), None)

    assert raised.value is once


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_fail_after_a_delay() -> None:
    transport = FakeTransport([fail(ConnectError, delay=2.0)])
    started = now()

    with pytest.raises(ConnectError):
        await transport.send(ENDPOINT, get("a"), None)

    assert now() - started == pytest.approx(2.0)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_hang_is_cut_by_the_attempts_timeout() -> None:
    transport = FakeTransport([hang()])
    started = now()

    with pytest.raises(DeadlineExceededError):
        await transport.send(ENDPOINT, get("a"), 1.5)

    assert now() - started == pytest.approx(1.5)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_hang_without_a_timeout_waits_until_cancelled() -> None:
    transport = FakeTransport([hang()])
    call = asyncio.ensure_future(transport.send(ENDPOINT, get("a"), None))

    await asyncio.sleep(3600)
    assert not call.done()
    call.cancel()

    with pytest.raises(asyncio.CancelledError):
        await call


@pytest.mark.asyncio
async def test_otherwise_answers_every_attempt_past_the_script() -> None:
    scripted = Response(201)
    transport = FakeTransport([scripted], otherwise=respond(204))

    statuses = [(await transport.send(ENDPOINT, get("a"), None)).status for _ in range(4)]

    assert statuses == [201, 204, 204, 204]
    assert len(transport.sent) == 4
    assert transport.responses[0] is scripted


def test_a_negative_delay_is_refused() -> None:
    with pytest.raises(ValueError, match="delay must be >= 0 seconds, got -1"):
        respond(200, delay=-1)
    with pytest.raises(ValueError, match="delay must be >= 0 seconds, got -2"):
        fail(ConnectError, delay=-2)
