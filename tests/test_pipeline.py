"""compose and Pipeline: order, short-circuits, repeated calls, errors, generic use."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from aio_pipeline import Deadline, DeadlineExceededError, Handler, Pipeline, Response, compose, get
from aio_pipeline.testing import FakeTransport


def recorder(name: str, log: list[str]):  # type: ignore[no-untyped-def]
    async def middleware(request: str, call_next: Handler[str, str], /) -> str:
        log.append(f"{name}>")
        response = await call_next(request + name)
        log.append(f"<{name}")
        return response + name

    return middleware


async def echo(request: str) -> str:
    return f"[{request}]"


@pytest.mark.asyncio
async def test_first_middleware_is_outermost() -> None:
    log: list[str] = []
    handler = compose([recorder("a", log), recorder("b", log)], echo)
    assert await handler("") == "[ab]ba"
    assert log == ["a>", "b>", "<b", "<a"]


@pytest.mark.asyncio
async def test_no_middlewares_is_the_handler_itself() -> None:
    assert compose([], echo) is echo


@pytest.mark.asyncio
async def test_short_circuit_skips_the_rest() -> None:
    reached: list[str] = []

    async def cached(request: str, call_next: Handler[str, str], /) -> str:
        return "cached"

    async def handler(request: str) -> str:
        reached.append(request)
        return "fresh"

    assert await compose([cached, recorder("x", [])], handler)("r") == "cached"
    assert reached == []


@pytest.mark.asyncio
async def test_middleware_may_call_next_twice() -> None:
    calls: list[str] = []

    async def twice(request: str, call_next: Handler[str, str], /) -> str:
        first = await call_next(request + "1")
        second = await call_next(request + "2")
        return first + second

    async def handler(request: str) -> str:
        calls.append(request)
        return request.upper()

    assert await compose([twice], handler)("r") == "R1R2"
    assert calls == ["r1", "r2"]


@pytest.mark.asyncio
async def test_errors_propagate_through_outer_middlewares() -> None:
    seen: list[BaseException] = []

    async def observer(request: str, call_next: Handler[str, str], /) -> str:
        try:
            return await call_next(request)
        except ValueError as error:
            seen.append(error)
            raise

    async def failing(request: str, call_next: Handler[str, str], /) -> str:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await compose([observer, failing], echo)("r")
    assert [str(e) for e in seen] == ["boom"]


@dataclass(frozen=True)
class Job:
    """A non-HTTP request type: compose is generic."""

    steps: tuple[str, ...]


class Tag:
    """A middleware object with async __call__, adding one step."""

    def __init__(self, step: str) -> None:
        self.step = step

    async def __call__(self, job: Job, call_next: Handler[Job, int], /) -> int:
        return await call_next(Job((*job.steps, self.step)))


@pytest.mark.asyncio
async def test_compose_with_non_http_types_and_callable_objects() -> None:
    async def run(job: Job) -> int:
        return len(job.steps)

    assert await compose([Tag("a"), Tag("b"), Tag("c")], run)(Job(())) == 3


@pytest.mark.asyncio
@pytest.mark.looptime  # the clock stands still: the time left is exactly the deadline's
async def test_pipeline_sends_through_transport_with_remaining_time() -> None:
    transport = FakeTransport([Response(204)])
    pipeline = Pipeline(transport, [])
    deadline = Deadline.from_timeout(3)
    response = await pipeline(get("x").replace(endpoint="http://127.0.0.1:1/", deadline=deadline))
    assert response.status == 204
    (sent,) = transport.sent
    assert sent.endpoint == "http://127.0.0.1:1/"
    assert sent.timeout is not None
    assert 0 < sent.timeout <= 3
    assert sent.timeout == pytest.approx(3)  # the whole deadline, not a fixed or shrunk value


@pytest.mark.asyncio
async def test_pipeline_without_deadline_sends_without_bound() -> None:
    transport = FakeTransport([Response(200)])
    await Pipeline(transport)(get("http://127.0.0.1:1/x"))
    assert transport.sent[0].timeout is None


@pytest.mark.asyncio
async def test_pipeline_fails_fast_on_expired_deadline() -> None:
    transport = FakeTransport([])
    with pytest.raises(DeadlineExceededError):
        await Pipeline(transport)(get("http://127.0.0.1:1/x").replace(deadline=Deadline.from_timeout(0)))
    assert transport.sent == []


@pytest.mark.asyncio
async def test_pipeline_is_inspectable_and_closes_its_transport() -> None:
    async def auth(request, call_next, /):  # type: ignore[no-untyped-def]
        return await call_next(request)

    transport = FakeTransport()
    async with Pipeline(transport, [auth]) as pipeline:
        assert pipeline.middlewares == (auth,)
        assert pipeline.transport is transport
        assert "auth -> FakeTransport" in repr(pipeline)
    assert transport.closed
