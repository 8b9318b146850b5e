"""``FakeTransport``: the scripted transport the unit tests of the middlewares stand on."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from aio_pipeline import DeadlineExceededError, Request, Response, TransportError, get, post
from aio_pipeline.testing import FakeTransport

pytestmark = pytest.mark.asyncio

ENDPOINT = "http://service.test/"
#: The attempt timeout, in virtual seconds.
TIMEOUT = 1.0


def sleeping_step(seconds: float, response: Response) -> Callable[[Request], Awaitable[Response]]:
    async def step(request: Request) -> Response:
        await asyncio.sleep(seconds)
        return response

    return step


async def test_responses_come_back_in_script_order() -> None:
    first, second = Response(200), Response(503)
    transport = FakeTransport([first, second])

    assert await transport.send(ENDPOINT, get("a"), None) is first
    assert await transport.send(ENDPOINT, get("b"), None) is second


async def test_an_exception_step_is_raised() -> None:
    failure = TransportError("reset by peer")
    transport = FakeTransport([failure])

    with pytest.raises(TransportError) as raised:
        await transport.send(ENDPOINT, get("a"), None)

    assert raised.value is failure


async def test_an_async_callable_step_gets_the_request() -> None:
    async def echo_method(request: Request) -> Response:
        return Response(200, body=request.method.encode())

    transport = FakeTransport([echo_method])

    response = await transport.send(ENDPOINT, post("a"), None)

    assert await response.read() == b"POST"


async def test_add_appends_steps() -> None:
    late = Response(204)
    transport = FakeTransport()
    transport.add(late)

    assert await transport.send(ENDPOINT, get("a"), None) is late


async def test_running_out_of_steps_is_an_assertion_error() -> None:
    transport = FakeTransport([Response(200)])
    await transport.send(ENDPOINT, get("a"), None)

    with pytest.raises(AssertionError, match="no step left for attempt 2"):
        await transport.send(ENDPOINT, get("b"), None)

    assert len(transport.sent) == 2  # the unscripted attempt is recorded too


@pytest.mark.looptime
async def test_sent_records_every_call_and_when() -> None:
    transport = FakeTransport([Response(200), Response(200)])
    first, second = get("a"), get("b")

    await transport.send(ENDPOINT, first, TIMEOUT)
    await asyncio.sleep(TIMEOUT)
    await transport.send(None, second, None)

    assert [(sent.endpoint, sent.request, sent.timeout) for sent in transport.sent] == [
        (ENDPOINT, first, TIMEOUT),
        (None, second, None),
    ]
    assert transport.sent[1].at - transport.sent[0].at == pytest.approx(TIMEOUT)


@pytest.mark.looptime
async def test_a_step_slower_than_the_timeout_raises_deadline_exceeded() -> None:
    transport = FakeTransport([sleeping_step(2 * TIMEOUT, Response(200))])
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(DeadlineExceededError) as raised:
        await transport.send(ENDPOINT, get("a"), TIMEOUT)

    assert loop.time() - started == pytest.approx(TIMEOUT)
    assert raised.value.request is transport.sent[0].request


@pytest.mark.looptime
async def test_a_step_within_the_timeout_answers() -> None:
    response = Response(200)
    transport = FakeTransport([sleeping_step(TIMEOUT / 2, response)])
    loop = asyncio.get_running_loop()
    started = loop.time()

    assert await transport.send(ENDPOINT, get("a"), TIMEOUT) is response
    assert loop.time() - started == pytest.approx(TIMEOUT / 2)


@pytest.mark.looptime
async def test_without_a_timeout_a_step_may_take_as_long_as_it_likes() -> None:
    response = Response(200)
    transport = FakeTransport([sleeping_step(1000 * TIMEOUT, response)])

    assert await transport.send(ENDPOINT, get("a"), None) is response


async def test_a_timeout_error_of_the_step_itself_is_not_a_deadline() -> None:
    async def step(request: Request) -> Response:
        raise TimeoutError("the step's own timeout")

    transport = FakeTransport([step])

    with pytest.raises(TimeoutError) as raised:
        await transport.send(ENDPOINT, get("a"), TIMEOUT)

    assert not isinstance(raised.value, DeadlineExceededError)


async def test_aclose_marks_it_closed() -> None:
    transport = FakeTransport()
    async with transport:
        assert not transport.closed

    assert transport.closed
