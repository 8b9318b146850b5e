"""CircuitBreakerMiddleware: on a scripted fake transport, then against a real local server that
fails and recovers. Waiting out a break runs on looptime's virtual loop clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import test_utils, web

from aio_pipeline import (
    AioHttpTransport,
    CircuitOpenError,
    Client,
    ConnectError,
    Deadline,
    DeadlineExceededError,
    Handler,
    InvalidRequestError,
    Pipeline,
    Request,
    Response,
    get,
)
from aio_pipeline.circuit import (
    CircuitBreaker,
    CircuitState,
    CircuitStateChanged,
    DefaultCircuitBreaker,
    NoopCircuitBreaker,
)
from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware, endpoint_authority
from aio_pipeline.policy import DefaultResponseClassifier, ResponseVerdict
from aio_pipeline.testing import FakeTransport, Step

ENDPOINT = "http://service.test:8080/api/"
KEY = "http://service.test:8080"
CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def seed_breaker(**options: Any) -> DefaultCircuitBreaker[str, Response]:
    """The familiar example's breaker: 1 s break and window, 2 attempts minimum, 50%."""
    settings: dict[str, Any] = {
        "break_duration": 1.0,
        "sampling_duration": 1.0,
        "minimum_throughput": 2,
        "failure_threshold": 0.5,
    }
    return DefaultCircuitBreaker[str, Response](**{**settings, **options})


def pipeline(breaker: CircuitBreaker[Any, Any], *steps: Step, **options: Any) -> tuple[Pipeline, FakeTransport]:
    transport = FakeTransport(steps)
    return Pipeline(transport, [CircuitBreakerMiddleware(breaker, **options)]), transport


def call(url: str = "thing", **options: Any) -> Request:
    return get(url, **options).replace(endpoint=ENDPOINT)


async def statuses(send: Pipeline, count: int) -> list[int]:
    results = []
    for _ in range(count):
        async with await send(call()) as response:
            results.append(response.status)
    return results


# --- what counts ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_rejected_responses_open_the_circuit_and_then_nothing_is_sent() -> None:
    breaker = seed_breaker()
    send, transport = pipeline(breaker, Response(503), Response(500))

    assert await statuses(send, 2) == [503, 500]  # the responses themselves are returned
    request = call()
    with pytest.raises(CircuitOpenError) as caught:
        await send(request)

    assert len(transport.sent) == 2
    assert caught.value.request is request
    assert 0 < caught.value.retry_after <= 1.0
    assert breaker.state == {KEY: OPEN}


@pytest.mark.asyncio
async def test_exceptions_count_as_failures_and_propagate_unchanged() -> None:
    breaker = seed_breaker()
    refused, timed_out = ConnectError("refused"), DeadlineExceededError("slow")
    send, _ = pipeline(breaker, refused, timed_out)

    for expected in (refused, timed_out):
        with pytest.raises(type(expected)) as caught:
            await send(call())
        assert caught.value is expected
    assert breaker.state == {KEY: OPEN}


@pytest.mark.asyncio
async def test_accepted_responses_are_successes() -> None:
    breaker = seed_breaker(failure_threshold=0.3)
    do_not_retry = Response(503, {"X-Do-Not-Retry": "1"})
    send, _ = pipeline(breaker, Response(200), Response(404), do_not_retry, Response(503))

    assert await statuses(send, 4) == [200, 404, 503, 503]
    assert breaker.state == {KEY: CLOSED}  # 1 failure in 4


@pytest.mark.asyncio
async def test_408_and_429_are_failures() -> None:
    breaker = seed_breaker()
    send, _ = pipeline(breaker, Response(408), Response(429))
    assert await statuses(send, 2) == [408, 429]
    assert breaker.state == {KEY: OPEN}


@pytest.mark.asyncio
async def test_the_classifier_decides_which_responses_are_failures() -> None:
    breaker = seed_breaker()
    classifier = DefaultResponseClassifier(verdict_for_status={404: ResponseVerdict.REJECT})
    send, _ = pipeline(breaker, Response(404), Response(404), classifier=classifier)
    await statuses(send, 2)
    assert breaker.state == {KEY: OPEN}


@pytest.mark.asyncio
async def test_a_broken_classifier_closes_the_response_it_will_not_return() -> None:
    class Broken(DefaultResponseClassifier):
        def classify(self, response: Response) -> ResponseVerdict:
            raise RuntimeError("classifier bug")

    response = Response(200)
    send, _ = pipeline(seed_breaker(minimum_throughput=1), response, classifier=Broken())
    with pytest.raises(RuntimeError, match="classifier bug"):
        await send(call())
    assert response.closed


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_cancelled_attempt_while_closed_counts_as_nothing() -> None:
    async def slow(request: Request) -> Response:
        await asyncio.sleep(10)
        return Response(200)

    breaker = seed_breaker(minimum_throughput=1, failure_threshold=0.5)
    send, transport = pipeline(breaker, *[slow] * 5, Response(200), Response(503))
    for _ in range(5):  # hedging losers: cancelled by their caller
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await send(call())
    await statuses(send, 1)
    await statuses(send, 1)
    assert breaker.state == {KEY: OPEN}  # 1 failure in 2 samples: the cancellations were not successes
    assert len(transport.sent) == 7


# --- half-open -----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_probe_hanging_past_its_deadline_opens_the_circuit_again() -> None:
    async def hang(request: Request) -> Response:
        await asyncio.sleep(3600)
        return Response(200)

    breaker = seed_breaker()
    send, transport = pipeline(breaker, Response(503), Response(503), hang)
    await statuses(send, 2)
    await asyncio.sleep(1.0)

    with pytest.raises(DeadlineExceededError):  # the transport enforces the attempt deadline
        await send(call().replace(deadline=Deadline.from_timeout(0.5)))

    assert breaker.state == {KEY: OPEN}
    assert len(transport.sent) == 3


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_probe_cancelled_by_its_caller_counts_as_a_failure() -> None:
    async def hang(request: Request) -> Response:
        await asyncio.sleep(3600)
        return Response(200)

    breaker = seed_breaker()
    send, _ = pipeline(breaker, Response(503), Response(503), hang)
    await statuses(send, 2)
    await asyncio.sleep(1.0)

    async def probe_call() -> Response:
        return await send(call())

    probe = asyncio.create_task(probe_call())
    await asyncio.sleep(0.1)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe

    assert breaker.state == {KEY: OPEN}


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_concurrent_attempts_while_half_open_send_one_probe() -> None:
    async def slow_ok(request: Request) -> Response:
        await asyncio.sleep(0.2)
        return Response(200)

    breaker = seed_breaker()
    send, transport = pipeline(breaker, Response(503), Response(503), slow_ok)
    await statuses(send, 2)
    await asyncio.sleep(1.0)

    results = await asyncio.gather(*(send(call()) for _ in range(5)), return_exceptions=True)

    assert [type(result) for result in results].count(Response) == 1
    assert [type(result) for result in results].count(CircuitOpenError) == 4
    assert len(transport.sent) == 3
    assert breaker.state == {KEY: CLOSED}


# --- keys ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "url", "key"),
    [
        ("http://service.test:8080/api/", "x", "http://service.test:8080"),
        ("http://Service.TEST/api", "x", "http://service.test:80"),
        ("https://service.test/", "x?token=secret", "https://service.test:443"),
        ("https://user:secret@service.test:8443/", "x", "https://service.test:8443"),
        ("http://[::1]:9000/", "x", "http://[::1]:9000"),
        ("http://service.test/", "https://other.test/absolute", "https://other.test:443"),
    ],
)
def test_the_default_key_is_the_authority_without_userinfo(endpoint: str, url: str, key: str) -> None:
    assert endpoint_authority(get(url).replace(endpoint=endpoint)) == key


def test_a_bad_port_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequestError, match="port"):
        endpoint_authority(get("x").replace(endpoint="http://service.test:99999/"))


@pytest.mark.asyncio
async def test_each_endpoint_has_its_own_circuit() -> None:
    breaker = seed_breaker()
    send, _ = pipeline(breaker, Response(503), Response(503), Response(200))
    await statuses(send, 2)

    async with await send(get("http://other.test/thing")) as response:
        assert response.status == 200
    assert breaker.state == {KEY: OPEN, "http://other.test:80": CLOSED}


@pytest.mark.asyncio
async def test_a_custom_key_function() -> None:
    breaker = seed_breaker()
    send, _ = pipeline(breaker, Response(503), Response(503), Response(200), key=lambda request: request.route)

    await send(call("users/{id}", path_parameters={"id": "1"}))
    await send(call("users/{id}", path_parameters={"id": "2"}))
    async with await send(call("health")) as response:
        assert response.status == 200
    assert breaker.state == {"users/{id}": OPEN, "health": CLOSED}


@pytest.mark.asyncio
async def test_every_physical_attempt_is_one_sample() -> None:
    async def three_attempts(request: Request, call_next: Handler[Request, Response], /) -> Response:
        """A stand-in for a retry strategy, which sits outside the breaker."""
        for attempt in (1, 2, 3):
            response = await call_next(request.replace(attempt=attempt))
            if response.status < 500 or attempt == 3:
                return response
            await response.close()
        raise AssertionError("unreachable")

    events: list[CircuitStateChanged[str]] = []
    breaker = seed_breaker(minimum_throughput=3, failure_threshold=1.0, hooks=[events.append])
    transport = FakeTransport([Response(503), Response(503), Response(503)])
    send = Pipeline(transport, [three_attempts, CircuitBreakerMiddleware(breaker)])

    async with await send(call()) as response:
        assert response.status == 503
    assert [(event.key, event.new) for event in events] == [(KEY, OPEN)]  # one call, three samples


# --- other breakers ------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_any_circuit_breaker_works_through_execute() -> None:
    class AlwaysOpen(CircuitBreaker[str, Response]):
        async def execute(self, *, scope: str, operation: Any, fallback: Response, is_successful: Any) -> Response:
            return fallback

        @property
        def state(self) -> dict[str, CircuitState]:
            return {}

    send, transport = pipeline(AlwaysOpen(), Response(200))
    with pytest.raises(CircuitOpenError) as caught:
        await send(call())
    assert caught.value.retry_after == 0.0
    assert transport.sent == []


@pytest.mark.asyncio
async def test_the_noop_breaker_passes_everything() -> None:
    send, transport = pipeline(NoopCircuitBreaker[str, Response](), *[Response(503)] * 5)
    assert await statuses(send, 5) == [503] * 5
    assert len(transport.sent) == 5


# --- a real server that fails, then recovers -----------------------------------------------------


@dataclass
class FlakyServer:
    """An aiohttp server on 127.0.0.1 answering 503 until ``healthy``; ``hits`` counts requests."""

    url: str = ""
    port: int = 0
    healthy: bool = False
    hits: int = 0


@pytest_asyncio.fixture
async def flaky_server() -> AsyncIterator[FlakyServer]:
    state = FlakyServer()

    async def handle(request: web.Request) -> web.Response:
        state.hits += 1
        return web.Response(status=200 if state.healthy else 503, text="ok" if state.healthy else "down")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    server = test_utils.TestServer(app, host="127.0.0.1")
    await server.start_server()
    assert server.port is not None
    state.url, state.port = str(server.make_url("/")), server.port
    try:
        yield state
    finally:
        await server.close()


async def fetch(client: Client) -> int | CircuitOpenError:
    try:
        async with client.request(get("thing"), deadline=Deadline.from_timeout(5)) as response:
            return response.status
    except CircuitOpenError as error:
        return error


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_against_a_real_server_that_fails_then_recovers(flaky_server: FlakyServer) -> None:
    events: list[CircuitStateChanged[str]] = []
    breaker = DefaultCircuitBreaker[str, int](
        break_duration=1.0,
        sampling_duration=1.0,
        minimum_throughput=2,
        failure_threshold=0.5,
        hooks=[events.append],
    )
    async with aiohttp.ClientSession() as session:
        pipeline = Pipeline(AioHttpTransport(session), [CircuitBreakerMiddleware(breaker)])
        client = Client(flaky_server.url, pipeline)

        assert [await fetch(client) for _ in range(2)] == [503, 503]
        assert flaky_server.hits == 2

        refused = [await fetch(client) for _ in range(10)]
        assert all(isinstance(result, CircuitOpenError) for result in refused)
        assert flaky_server.hits == 2  # failing fast: not one reached the server

        await asyncio.sleep(1.0)  # the break ends; the server is still down
        assert await fetch(client) == 503
        assert flaky_server.hits == 3  # exactly one probe
        assert isinstance(await fetch(client), CircuitOpenError)

        flaky_server.healthy = True
        await asyncio.sleep(0.5)
        assert isinstance(await fetch(client), CircuitOpenError)  # still within the new break
        await asyncio.sleep(0.5)
        assert await fetch(client) == 200  # the probe reaches the recovered server and closes
        assert [await fetch(client) for _ in range(5)] == [200] * 5
        assert flaky_server.hits == 9  # traffic has resumed

    key = f"http://127.0.0.1:{flaky_server.port}"
    assert [(event.key, event.new, event.reason) for event in events] == [
        (key, OPEN, "failure_ratio"),
        (key, HALF_OPEN, "break_elapsed"),
        (key, OPEN, "probe_failed"),
        (key, HALF_OPEN, "break_elapsed"),
        (key, CLOSED, "probes_succeeded"),
    ]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_defect_05_an_invalid_request_hands_the_half_open_probe_back_unused(flaky_server: FlakyServer) -> None:
    events: list[CircuitStateChanged[str]] = []
    breaker = DefaultCircuitBreaker[str, int](
        break_duration=1.0, sampling_duration=1.0, minimum_throughput=2, failure_threshold=0.5, hooks=[events.append]
    )
    async with aiohttp.ClientSession() as session:
        client = Client(flaky_server.url, Pipeline(AioHttpTransport(session), [CircuitBreakerMiddleware(breaker)]))
        assert [await fetch(client) for _ in range(2)] == [503, 503]
        await asyncio.sleep(1.0)  # half-open: one probe may go
        flaky_server.healthy = True

        # The transport cannot build the URL: the caller's mistake, and nothing was sent.
        with pytest.raises(InvalidRequestError, match="path parameter"):
            async with client.request(
                get("users/{id}", path_parameters={"user": "1"}), deadline=Deadline.from_timeout(5)
            ):
                pass
        assert flaky_server.hits == 2
        key = f"http://127.0.0.1:{flaky_server.port}"
        assert breaker.state == {key: HALF_OPEN}

        assert await fetch(client) == 200  # the probe slot was free: this call probes, and closes
        assert flaky_server.hits == 3

    assert [(event.new, event.reason) for event in events] == [
        (OPEN, "failure_ratio"),
        (HALF_OPEN, "break_elapsed"),
        (CLOSED, "probes_succeeded"),
    ]
