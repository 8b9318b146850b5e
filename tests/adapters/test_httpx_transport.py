"""``HttpxPipelineTransport``: our stack inside a plain ``httpx.AsyncClient``, against a real server on
127.0.0.1. Call sites are plain ``client.get(...)``; time is virtual (looptime). httpx is imported
lazily, so this module collects where httpx is not installed (those runs skip ``needs_extras``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from aio_pipeline import (
    CircuitOpenError,
    Deadline,
    DeadlineExceededError,
    Handler,
    InvalidRequestError,
    Middleware,
    Priority,
    Request,
    Response,
    set_context,
)
from aio_pipeline._circuit import DefaultCircuitBreaker
from aio_pipeline._delays import constant_delays
from aio_pipeline._events import AttemptFinished, Event
from middlewares.circuit_breaker import CircuitBreakerMiddleware
from middlewares.hedging import ParallelStrategy
from middlewares.retry import SequentialStrategy
from middlewares.strategy import SingleAttempt

if TYPE_CHECKING:
    import httpx
    from conftest import Backend, Stack  # tests/adapters/conftest.py

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime, pytest.mark.needs_extras]

RETRY = SequentialStrategy(attempts_count=3, delays_provider=constant_delays(delay=0.05))


def client_for(middlewares: list[Middleware[Request, Response]], **options: Any) -> tuple[httpx.AsyncClient, Any]:
    """A client over our transport over a recording real transport; both returned."""
    httpx = pytest.importorskip("httpx")
    from aio_pipeline.adapters.httpx_transport import HttpxPipelineTransport

    class Recording(httpx.AsyncHTTPTransport):  # type: ignore[misc,name-defined]
        """Keeps every response it hands out, to check that each one was closed."""

        def __init__(self) -> None:
            super().__init__()
            self.responses: list[Any] = []

        async def handle_async_request(self, request: Any) -> Any:
            response = await super().handle_async_request(request)
            self.responses.append(response)
            return response

    inner = Recording()
    return httpx.AsyncClient(transport=HttpxPipelineTransport(middlewares, inner=inner), **options), inner


def assert_nothing_held(inner: Any) -> None:
    assert inner.responses and all(response.is_closed for response in inner.responses)
    assert all(c.is_idle() or c.is_closed() for c in inner._pool.connections)  # private: httpcore's pool


async def test_deadline_priority_and_attempt_headers_arrive(backend: Backend, stack: Stack) -> None:
    client, inner = client_for(stack(SingleAttempt()))
    async with client:
        with set_context(deadline=Deadline.from_timeout(2.5), priority=Priority.HIGH):
            response = await client.get(backend.url("echo"))
        assert response.text == "echo"
        assert_nothing_held(inner)
    (arrival,) = backend.arrivals
    assert 2.4 < float(arrival.headers["X-Request-Timeout"]) <= 2.5
    assert arrival.headers["X-Request-Priority"] == "high"
    assert arrival.headers["X-Request-Attempt"] == "1"


async def test_request_extensions_give_a_deadline_and_priority(backend: Backend, stack: Stack) -> None:
    client, _ = client_for(stack(SingleAttempt()))
    async with client:
        extensions = {"deadline": Deadline.from_timeout(1.5), "priority": Priority.LOW}
        with set_context(deadline=Deadline.from_timeout(5.0)):  # the earlier deadline wins
            await client.get(backend.url("echo"), extensions=extensions)
        with pytest.raises(InvalidRequestError, match="must be a Deadline"):
            await client.get(backend.url("echo"), extensions={"deadline": 1.5})
    (timeout,) = backend.header("echo", "X-Request-Timeout")
    assert timeout is not None and 1.4 < float(timeout) <= 1.5
    assert backend.header("echo", "X-Request-Priority") == ["low"]


async def test_outside_any_context_a_call_gets_the_default_timeout(backend: Backend, stack: Stack) -> None:
    client, _ = client_for(stack(SingleAttempt(), timeout=7.0))
    async with client:
        await client.get(backend.url("echo"))
    (timeout,) = backend.header("echo", "X-Request-Timeout")
    assert timeout is not None and 6.9 < float(timeout) <= 7.0


async def test_a_flaky_endpoint_is_retried_and_every_response_closed(backend: Backend, stack: Stack) -> None:
    events: list[Event] = []
    strategy = SequentialStrategy(delays_provider=constant_delays(delay=0.05), event_hooks=[events.append])
    client, inner = client_for(stack(strategy))
    async with client:
        response = await client.get(backend.url("flaky"))
        assert (response.status_code, response.text) == (200, "ok")
        assert_nothing_held(inner)
    assert backend.header("flaky", "X-Request-Attempt") == ["1", "2"]
    assert [event.status for event in events if isinstance(event, AttemptFinished)] == [503, 200]


async def test_a_slow_endpoint_is_hedged_and_the_fast_answer_returned(backend: Backend, stack: Stack) -> None:
    loop = asyncio.get_running_loop()
    client, inner = client_for(stack(ParallelStrategy(attempts_count=2, delays_provider=constant_delays(delay=0.1))))
    async with client:
        started = loop.time()
        response = await client.get(backend.url("slow"))
        assert response.text == "fast"
        assert loop.time() - started == pytest.approx(0.1, abs=0.01)
        assert_nothing_held(inner)
    assert backend.header("slow", "X-Request-Attempt") == ["1", "2"]


async def test_the_breaker_opens_and_calls_fail_fast_with_circuit_open_error(backend: Backend, stack: Stack) -> None:
    breaker = DefaultCircuitBreaker[str, Response](
        break_duration=5.0, failure_threshold=0.5, minimum_throughput=2, sampling_duration=10.0
    )
    client, _ = client_for(stack(SingleAttempt(), CircuitBreakerMiddleware(breaker)))
    async with client:
        for _ in range(2):
            assert (await client.get(backend.url("down"))).status_code == 503
        with pytest.raises(CircuitOpenError):
            await client.get(backend.url("down"))
    assert backend.count("down") == 2


async def chunks() -> AsyncIterator[bytes]:
    for part in (b"streamed ", b"in ", b"three parts"):
        yield part


async def test_a_streaming_body_is_resent_whole(backend: Backend, stack: Stack) -> None:
    client, _ = client_for(stack(RETRY))
    async with client:
        assert (await client.put(backend.url("flaky"), content=chunks())).status_code == 200
    assert backend.bodies("flaky") == [b"streamed in three parts"] * 2


async def test_each_redirect_hop_runs_the_stack(backend: Backend, stack: Stack) -> None:
    client, _ = client_for(stack(RETRY), follow_redirects=True)
    async with client:
        response = await client.put(backend.url("redirect"), content=chunks())
        assert (response.status_code, len(response.history)) == (200, 1)
    assert [arrival.route for arrival in backend.arrivals] == ["redirect", "echo"]
    assert [arrival.headers["X-Request-Attempt"] for arrival in backend.arrivals] == ["1", "1"]
    assert backend.bodies("echo") == [b"streamed in three parts"]


async def test_a_compressed_body_is_decoded_by_httpx_once(backend: Backend, stack: Stack) -> None:
    client, _ = client_for(stack(SingleAttempt()))
    async with client:
        response = await client.get(backend.url("gzip"))
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.text == backend.GZIP_TEXT


async def test_a_network_failure_is_httpxs_own_exception_after_the_retries(refused_port: str, stack: Stack) -> None:
    httpx = pytest.importorskip("httpx")
    events: list[Event] = []
    client, _ = client_for(stack(SequentialStrategy(attempts_count=2, event_hooks=[events.append])))
    async with client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{refused_port}/echo")
    assert sum(isinstance(event, AttemptFinished) for event in events) == 2


async def test_the_deadline_bounds_the_call(backend: Backend, stack: Stack) -> None:
    loop = asyncio.get_running_loop()
    client, inner = client_for(stack(SingleAttempt()))
    async with client:
        started = loop.time()
        with pytest.raises(DeadlineExceededError):
            await client.get(backend.url("slow"), extensions={"deadline": Deadline.from_timeout(0.3)})
        assert loop.time() - started == pytest.approx(0.3, abs=0.01)
        assert all(c.is_idle() or c.is_closed() for c in inner._pool.connections)


async def test_a_response_made_by_a_middleware_is_returned_as_is(backend: Backend) -> None:
    async def answer_from_cache(request: Request, call_next: Handler[Request, Response], /) -> Response:
        return Response(203, {"X-Cache": "hit"}, b"cached")

    client, _ = client_for([answer_from_cache])
    async with client:
        response = await client.get(backend.url("echo"))
    assert (response.status_code, response.headers["X-Cache"], response.text) == (203, "hit", "cached")
    assert backend.arrivals == []


async def test_closing_the_client_closes_the_inner_transport() -> None:
    httpx = pytest.importorskip("httpx")
    from aio_pipeline.adapters.httpx_transport import HttpxPipelineTransport

    closed: list[str] = []

    class Inner(httpx.AsyncBaseTransport):  # type: ignore[misc,name-defined]
        async def aclose(self) -> None:
            closed.append("inner")

    async with httpx.AsyncClient(transport=HttpxPipelineTransport([], inner=Inner())):
        pass
    assert closed == ["inner"]


async def test_middlewares_must_be_callables() -> None:
    with pytest.raises(ValueError, match="middlewares must be callables"):
        client_for(["not a middleware"])  # type: ignore[list-item]
