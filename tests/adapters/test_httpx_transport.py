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
from aio_pipeline.circuit import DefaultCircuitBreaker
from aio_pipeline.middlewares import ClientDeadline, ClientPriority
from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware
from aio_pipeline.middlewares.hedging import ParallelStrategy
from aio_pipeline.middlewares.retry import SequentialStrategy, split_deadline_between_attempts
from aio_pipeline.middlewares.strategy import SingleAttempt
from aio_pipeline.policy import AttemptFinished, Event, constant_delays

if TYPE_CHECKING:
    import httpx
    from conftest import Backend, Stack  # tests/adapters/conftest.py

    from tests.conftest import StartRawServer

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


# --- regressions (issue 13) ----------------------------------------------------------------------


def checked_out(inner: Any) -> int:
    """Connections httpcore's pool has handed out and not got back, plus requests waiting for
    one. httpcore has no public API for it: this reads its pool (as tests/faults does)."""
    pool = inner._pool
    return sum(not (c.is_idle() or c.is_closed()) for c in pool.connections) + len(pool._requests)


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client hangs up


async def test_defect_01_httpx_dropin_keeps_pool_under_hedging(
    raw_server: StartRawServer, backend: Backend, stack: Stack
) -> None:
    """Every hedge is cancelled twice at the deadline (its attempt scope, the TaskGroup); httpcore
    then loses the connection unless the attempt is cancelled once (``cancelled_once``)."""
    httpx = pytest.importorskip("httpx")
    from aio_pipeline.adapters.httpx_transport import HttpxPipelineTransport

    silent = await raw_server(never_answer)
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=10))
    hedging = ParallelStrategy(attempts_count=3, delays_provider=constant_delays(delay=0.05))
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(transport=HttpxPipelineTransport(stack(hedging, timeout=0.3), inner=inner)) as client:
        for _ in range(5):
            started = loop.time()
            with pytest.raises(DeadlineExceededError):
                await client.get(f"{silent.base_url}/never")
            assert loop.time() - started == pytest.approx(0.3, abs=0.01)
        assert checked_out(inner) == 0
        response = await client.get(backend.url("echo"))
        assert (response.status_code, response.text) == (200, "echo")
        assert checked_out(inner) == 0
    assert len(silent.received) == 5 * 3  # every hedge reached the silent server
    assert backend.count("echo") == 1


async def test_a_post_redirected_to_a_refused_port_is_sent_once(
    backend: Backend, stack: Stack, refused_port: str
) -> None:
    """Defect 2, the drop-in's side: httpx runs the stack once per hop, so the refused second hop
    (a GET, after 303) is retried by its own run, and the POST, answered, is never resent."""
    httpx = pytest.importorskip("httpx")
    events: list[Event] = []
    strategy = SequentialStrategy(
        attempts_count=3, delays_provider=constant_delays(delay=0.05), event_hooks=[events.append]
    )
    client, inner = client_for(stack(strategy), follow_redirects=True)
    async with client:
        with pytest.raises(httpx.ConnectError):
            await client.post(backend.url("see-other"), params={"to": f"{refused_port}/done"}, content=b"one order")
        assert_nothing_held(inner)
    assert [(a.route, a.method, a.body) for a in backend.arrivals] == [("see-other", "POST", b"one order")]
    finished = [(event.request.method, event.request.attempt) for event in events if isinstance(event, AttemptFinished)]
    assert finished == [("POST", 1), ("GET", 1), ("GET", 2), ("GET", 3)]


async def test_defect_14_httpx_dropin_a_pool_timeout_is_a_connect_error(
    raw_server: StartRawServer, stack: Stack
) -> None:
    """A POST that timed out waiting for the only pooled connection never left: the strategy may
    try it again (a ConnectError to the stack), and the caller still gets httpx's PoolTimeout."""
    httpx = pytest.importorskip("httpx")
    from aio_pipeline.adapters.httpx_transport import HttpxPipelineTransport

    holding_the_connection = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        holding_the_connection.set()
        await reader.read()

    raw = await raw_server(hold)
    events: list[Event] = []
    strategy = SequentialStrategy(
        attempts_count=3, delays_provider=constant_delays(delay=0.05), event_hooks=[events.append]
    )
    inner = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=1))
    transport = HttpxPipelineTransport(stack(strategy, timeout=5.0), inner=inner)
    async with httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(None, pool=0.5)) as client:
        held = asyncio.create_task(client.get(f"{raw.base_url}/held"))
        await holding_the_connection.wait()
        with pytest.raises(httpx.PoolTimeout):
            await client.post(f"{raw.base_url}/order", content=b"one order")
        finished = [event.request.method for event in events if isinstance(event, AttemptFinished)]
        assert finished == ["POST"] * 3
        assert len(raw.received) == 1  # the held GET: the POST never left
        with pytest.raises(DeadlineExceededError):
            await held


async def test_defect_13_httpx_dropin_redirect_hops_share_the_call_deadline(backend: Backend, stack: Stack) -> None:
    """Three hops of 0.6 s under a 1 s default: the second hop gets what is left, and the call
    ends at 1 s, instead of each hop getting a fresh second."""
    loop = asyncio.get_running_loop()
    client, inner = client_for(stack(SingleAttempt(), timeout=1.0), follow_redirects=True)
    async with client:
        started = loop.time()
        with pytest.raises(DeadlineExceededError):
            await client.get(backend.url("hops"), params={"n": "3", "s": "0.6"})
        assert loop.time() - started == pytest.approx(1.0, abs=0.01)
        assert checked_out(inner) == 0
    timeouts = [float(timeout or "nan") for timeout in backend.header("hops", "X-Request-Timeout")]
    assert timeouts == pytest.approx([1.0, 0.4], abs=0.01)


async def test_defect_13_httpx_dropin_carries_the_calls_deadline_not_the_attempts_share(
    backend: Backend, stack: Stack
) -> None:
    """Each attempt gets a third of what is left (``split_deadline_between_attempts``): the next
    hop must inherit the call's deadline, not the first attempt's share of it."""
    strategy = SequentialStrategy(attempts_count=3, deadline_provider=split_deadline_between_attempts())
    client, _ = client_for(stack(strategy, timeout=1.0), follow_redirects=True)
    async with client:
        response = await client.get(backend.url("hops"), params={"n": "3", "s": "0.1"})
        assert (response.status_code, response.text, len(response.history)) == (200, "arrived", 2)
    timeouts = [float(timeout or "nan") for timeout in backend.header("hops", "X-Request-Timeout")]
    assert timeouts == pytest.approx([1.0 / 3, 0.9 / 3, 0.8 / 3], abs=0.005)


async def test_defect_13_httpx_dropin_a_request_sent_again_is_a_new_call(backend: Backend, stack: Stack) -> None:
    """The deadline left in a request for its redirect does not bind the same request sent later."""
    client, _ = client_for(stack(SingleAttempt(), timeout=1.0))
    async with client:
        request = client.build_request("GET", backend.url("echo"))
        await client.send(request)
        await asyncio.sleep(5.0)  # virtual: far past the first call's deadline
        assert (await client.send(request)).text == "echo"
    timeouts = [float(timeout or "nan") for timeout in backend.header("echo", "X-Request-Timeout")]
    assert timeouts == pytest.approx([1.0, 1.0], abs=0.01)


async def test_given_no_middlewares_the_standard_propagation_stack_runs(backend: Backend) -> None:
    httpx = pytest.importorskip("httpx")
    from aio_pipeline.adapters.httpx_transport import HttpxPipelineTransport

    async with httpx.AsyncClient(transport=HttpxPipelineTransport()) as client:
        with set_context(deadline=Deadline.from_timeout(2.5), priority=Priority.LOW):
            response = await client.get(backend.url("echo"))
        assert response.text == "echo"
    (arrival,) = backend.arrivals
    assert 2.4 < float(arrival.headers["X-Request-Timeout"]) <= 2.5
    assert arrival.headers["X-Request-Priority"] == "low"
    assert arrival.headers["X-Request-Attempt"] == "1"


async def test_a_deadline_with_nothing_to_write_it_is_refused_saying_what_to_add() -> None:
    pytest.importorskip("httpx")
    from aio_pipeline.adapters.httpx_transport import HttpxPipelineTransport

    with pytest.raises(ValueError, match=r"ClientDeadline but nothing after it writes .* add SystemHeaders\(\)"):
        HttpxPipelineTransport([ClientDeadline(), ClientPriority()])
