"""``aiohttp_client_middlewares``: our stack inside a plain ``aiohttp.ClientSession``, against a real
server on 127.0.0.1. Call sites are plain ``session.get(...)``; time is virtual (looptime)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import payload

from aio_pipeline import (
    CircuitOpenError,
    Deadline,
    DeadlineExceededError,
    Handler,
    InvalidRequestError,
    PipelineError,
    Priority,
    Request,
    Response,
    set_context,
)
from aio_pipeline.adapters.aiohttp_client import aiohttp_client_middlewares
from aio_pipeline.circuit import DefaultCircuitBreaker
from aio_pipeline.middlewares import ClientDeadline, ClientPriority, SystemHeaders
from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware
from aio_pipeline.middlewares.hedging import ParallelStrategy
from aio_pipeline.middlewares.retry import SequentialStrategy
from aio_pipeline.middlewares.strategy import SingleAttempt
from aio_pipeline.policy import AttemptFinished, Event, constant_delays

if TYPE_CHECKING:
    from conftest import Backend, Stack  # tests/adapters/conftest.py

    from tests.conftest import StartRawServer

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]

RETRY = SequentialStrategy(attempts_count=3, delays_provider=constant_delays(delay=0.05))


def released(response: aiohttp.ClientResponse) -> bool:
    """Whether ``release()`` or ``close()`` was called (``closed`` is also true once the body is in)."""
    return response._released


class Recorder:
    """A user's own aiohttp middleware, placed after ours: it sees every attempt and keeps every
    ``ClientResponse``, noting at each attempt which earlier ones were already released."""

    def __init__(self) -> None:
        self.responses: list[aiohttp.ClientResponse] = []
        self.released_at_attempt: list[list[bool]] = []

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        self.released_at_attempt.append([released(response) for response in self.responses])
        response = await handler(request)
        self.responses.append(response)
        return response


def assert_no_connection_held(session: aiohttp.ClientSession) -> None:
    connector = session.connector
    assert connector is not None
    assert not connector._acquired  # private, but the one place aiohttp counts connections in use


async def test_deadline_priority_and_attempt_headers_arrive(backend: Backend, stack: Stack) -> None:
    async with aiohttp.ClientSession(middlewares=aiohttp_client_middlewares(stack(SingleAttempt()))) as session:
        with set_context(deadline=Deadline.from_timeout(2.5), priority=Priority.HIGH):
            async with session.get(backend.url("echo")) as response:
                assert await response.text() == "echo"
    (arrival,) = backend.arrivals
    assert 2.4 < float(arrival.headers["X-Request-Timeout"]) <= 2.5
    assert arrival.headers["X-Request-Priority"] == "high"
    assert arrival.headers["X-Request-Attempt"] == "1"


async def test_outside_any_context_a_call_gets_the_default_timeout(backend: Backend, stack: Stack) -> None:
    middlewares = aiohttp_client_middlewares(stack(SingleAttempt(), timeout=7.0))
    async with aiohttp.ClientSession(middlewares=middlewares) as session, session.get(backend.url("echo")) as response:
        assert response.status == 200
    (timeout,) = backend.header("echo", "X-Request-Timeout")
    assert timeout is not None and 6.9 < float(timeout) <= 7.0
    assert backend.header("echo", "X-Request-Priority") == ["normal"]


async def test_a_flaky_endpoint_is_retried_and_the_rejected_response_released(backend: Backend, stack: Stack) -> None:
    recorder, events = Recorder(), list[Event]()
    strategy = SequentialStrategy(delays_provider=constant_delays(delay=0.05), event_hooks=[events.append])
    middlewares: tuple[Any, ...] = (*aiohttp_client_middlewares(stack(strategy)), recorder)
    async with aiohttp.ClientSession(middlewares=middlewares) as session:
        async with session.get(backend.url("flaky")) as response:
            _, returned = recorder.responses
            assert recorder.released_at_attempt == [[], [True]]  # released before the retry, not at the end
            assert response is returned and not released(returned)
            assert (response.status, await response.text()) == (200, "ok")
        assert_no_connection_held(session)
    assert backend.header("flaky", "X-Request-Attempt") == ["1", "2"]
    assert [event.status for event in events if isinstance(event, AttemptFinished)] == [503, 200]


async def test_a_slow_endpoint_is_hedged_and_the_fast_answer_returned(backend: Backend, stack: Stack) -> None:
    loop = asyncio.get_running_loop()
    hedging = ParallelStrategy(attempts_count=2, delays_provider=constant_delays(delay=0.1))
    async with aiohttp.ClientSession(middlewares=aiohttp_client_middlewares(stack(hedging))) as session:
        started = loop.time()
        async with session.get(backend.url("slow")) as response:
            assert await response.text() == "fast"
        assert loop.time() - started == pytest.approx(0.1, abs=0.01)
        assert_no_connection_held(session)  # the losing attempt's connection was closed
    assert backend.header("slow", "X-Request-Attempt") == ["1", "2"]


async def test_the_breaker_opens_and_calls_fail_fast_with_circuit_open_error(backend: Backend, stack: Stack) -> None:
    breaker = DefaultCircuitBreaker[str, Response](
        break_duration=5.0, failure_threshold=0.5, minimum_throughput=2, sampling_duration=10.0
    )
    middlewares = aiohttp_client_middlewares(stack(SingleAttempt(), CircuitBreakerMiddleware(breaker)))
    async with aiohttp.ClientSession(middlewares=middlewares) as session:
        for _ in range(2):
            async with session.get(backend.url("down")) as response:
                assert response.status == 503  # statuses are responses, as without the stack
        with pytest.raises(CircuitOpenError) as raised:
            await session.get(backend.url("down"))
        assert raised.value.retry_after == pytest.approx(5.0)
        assert_no_connection_held(session)
    assert backend.count("down") == 2


async def chunks() -> AsyncIterator[bytes]:
    for part in (b"streamed ", b"in ", b"three parts"):
        yield part


async def test_a_streaming_body_is_resent_whole(backend: Backend, stack: Stack) -> None:
    middlewares = aiohttp_client_middlewares(stack(RETRY))
    async with (
        aiohttp.ClientSession(middlewares=middlewares) as session,
        session.put(backend.url("flaky"), data=chunks()) as response,
    ):
        assert response.status == 200
    assert backend.bodies("flaky") == [b"streamed in three parts"] * 2


class SpentPayload(payload.BytesIOPayload):
    """A body that some earlier code already sent: it cannot be replayed."""

    _consumed = True


async def test_a_body_that_cannot_be_replayed_is_refused_not_sent_empty(backend: Backend, stack: Stack) -> None:
    async with aiohttp.ClientSession(middlewares=aiohttp_client_middlewares(stack(RETRY))) as session:
        with pytest.raises(InvalidRequestError, match="cannot be replayed"):
            await session.put(backend.url("flaky"), data=SpentPayload(io.BytesIO(b"gone")))
    assert backend.arrivals == []


async def test_the_users_own_session_middlewares_keep_working(backend: Backend, stack: Stack) -> None:
    calls: list[str] = []

    async def once_per_call(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> Any:
        calls.append("outer")
        request.headers["X-Outer"] = "yes"
        return await handler(request)

    async def once_per_attempt(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> Any:
        calls.append("inner")
        request.headers["X-Inner"] = request.headers["X-Request-Attempt"]
        return await handler(request)

    middlewares = (once_per_call, *aiohttp_client_middlewares(stack(RETRY)), once_per_attempt)
    async with aiohttp.ClientSession(middlewares=middlewares) as session, session.get(backend.url("flaky")) as response:
        assert response.status == 200
    assert calls == ["outer", "inner", "inner"]
    assert backend.header("flaky", "X-Outer") == ["yes", "yes"]
    assert backend.header("flaky", "X-Inner") == ["1", "2"]


async def test_each_redirect_hop_runs_the_stack_and_resends_a_streamed_body(backend: Backend, stack: Stack) -> None:
    async with aiohttp.ClientSession(middlewares=aiohttp_client_middlewares(stack(RETRY))) as session:
        with set_context(deadline=Deadline.from_timeout(3.0)):
            async with session.put(backend.url("redirect"), data=chunks()) as response:
                assert (response.status, len(response.history)) == (200, 1)
    assert [arrival.route for arrival in backend.arrivals] == ["redirect", "echo"]
    assert [arrival.headers["X-Request-Attempt"] for arrival in backend.arrivals] == ["1", "1"]
    assert backend.bodies("redirect") == backend.bodies("echo") == [b"streamed in three parts"]


async def test_a_network_failure_is_aiohttps_own_exception_after_the_retries(refused_port: str, stack: Stack) -> None:
    events: list[Event] = []
    strategy = SequentialStrategy(attempts_count=2, event_hooks=[events.append])
    async with aiohttp.ClientSession(middlewares=aiohttp_client_middlewares(stack(strategy))) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.get(f"{refused_port}/echo")
    assert sum(isinstance(event, AttemptFinished) for event in events) == 2


async def test_aiohttps_keep_alive_retry_runs_the_stack_once_more(raw_server: StartRawServer, stack: Stack) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass  # closes the connection without answering, like a stale keep-alive connection

    server = await raw_server(hang_up)
    strategy = SequentialStrategy(attempts_count=2, delays_provider=constant_delays(delay=0.05))
    async with aiohttp.ClientSession(middlewares=aiohttp_client_middlewares(stack(strategy))) as session:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await session.get(f"{server.base_url}/echo")
    attempts = [head.split(b"X-Request-Attempt: ")[1].split(b"\r\n")[0] for head in server.received]
    assert attempts == [b"1", b"2", b"1", b"2"]  # our two attempts, then aiohttp's one more run of them


async def test_the_deadline_bounds_the_call(backend: Backend, stack: Stack) -> None:
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(middlewares=aiohttp_client_middlewares(stack(SingleAttempt()))) as session:
        started = loop.time()
        with set_context(deadline=Deadline.from_timeout(0.3)), pytest.raises(DeadlineExceededError):
            await session.get(backend.url("slow"))
        assert loop.time() - started == pytest.approx(0.3, abs=0.01)
        assert_no_connection_held(session)


async def test_buffer_payload_reads_the_body_inside_the_attempt(backend: Backend, stack: Stack) -> None:
    middlewares = aiohttp_client_middlewares(stack(SingleAttempt()), buffer_payload=True)
    async with aiohttp.ClientSession(middlewares=middlewares) as session, session.get(backend.url("echo")) as response:
        assert_no_connection_held(session)  # read, and the connection back in the pool
        assert await response.text() == "echo"


async def test_a_response_aiohttp_did_not_receive_cannot_be_returned(backend: Backend) -> None:
    async def invent(request: Request, call_next: Handler[Request, Response], /) -> Response:
        await (await call_next(request)).close()
        return Response(200)

    async with aiohttp.ClientSession(middlewares=aiohttp_client_middlewares([invent])) as session:
        with pytest.raises(PipelineError, match="must return a response aiohttp received"):
            await session.get(backend.url("echo"))
        assert_no_connection_held(session)


async def test_middlewares_must_be_callables() -> None:
    with pytest.raises(ValueError, match="middlewares must be callables"):
        aiohttp_client_middlewares(["not a middleware"])  # type: ignore[list-item]


# --- regressions (issue 13) ----------------------------------------------------------------------


async def test_a_post_redirected_to_a_refused_port_is_sent_once(
    backend: Backend, stack: Stack, refused_port: str
) -> None:
    """Defect 2, the drop-in's side: aiohttp runs the stack once per hop, so the refused second hop
    (a GET, after 303) is retried by its own run, and the POST, answered, is never resent."""
    events: list[Event] = []
    strategy = SequentialStrategy(
        attempts_count=3, delays_provider=constant_delays(delay=0.05), event_hooks=[events.append]
    )
    async with aiohttp.ClientSession(middlewares=aiohttp_client_middlewares(stack(strategy))) as session:
        with pytest.raises(aiohttp.ClientConnectorError):
            await session.post(backend.url("see-other"), params={"to": f"{refused_port}/done"}, data=b"one order")
        assert_no_connection_held(session)
    assert [(a.route, a.method, a.body) for a in backend.arrivals] == [("see-other", "POST", b"one order")]
    finished = [(event.request.method, event.request.attempt) for event in events if isinstance(event, AttemptFinished)]
    assert finished == [("POST", 1), ("GET", 1), ("GET", 2), ("GET", 3)]


async def test_given_no_middlewares_the_standard_propagation_stack_runs(backend: Backend) -> None:
    async with aiohttp.ClientSession(middlewares=aiohttp_client_middlewares()) as session:
        with set_context(deadline=Deadline.from_timeout(2.5), priority=Priority.LOW):
            async with session.get(backend.url("echo")) as response:
                assert await response.text() == "echo"
    (arrival,) = backend.arrivals
    assert 2.4 < float(arrival.headers["X-Request-Timeout"]) <= 2.5
    assert arrival.headers["X-Request-Priority"] == "low"
    assert arrival.headers["X-Request-Attempt"] == "1"


async def test_a_deadline_and_priority_with_nothing_to_write_them_are_refused_saying_what_to_add(
    backend: Backend,
) -> None:
    for stack in ([ClientDeadline(), ClientPriority()], [ClientPriority(), SingleAttempt()]):
        with pytest.raises(ValueError, match=r"nothing after it writes .* add SystemHeaders\(\) last"):
            aiohttp_client_middlewares(stack)
    with pytest.raises(ValueError, match="ClientDeadline"):  # a writer before it does not count
        aiohttp_client_middlewares([SystemHeaders(), ClientDeadline()])
    # Kept local on purpose: said with a writer that writes nothing.
    local = aiohttp_client_middlewares([ClientDeadline(timeout=3), SystemHeaders(emit_system_headers=False)])
    async with aiohttp.ClientSession(middlewares=local) as session, session.get(backend.url("echo")) as response:
        assert response.status == 200
    (arrival,) = backend.arrivals
    assert "X-Request-Timeout" not in arrival.headers and "X-Request-Priority" not in arrival.headers
