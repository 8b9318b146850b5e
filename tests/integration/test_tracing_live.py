"""Tracing end to end (issue 17): real aiohttp services on 127.0.0.1, the OpenTelemetry SDK's
``InMemorySpanExporter`` on a ``TracerProvider`` of each test's own (the global one is never set),
and our client stack in the three places it runs: our ``Client``, ``ClientSession(middlewares=)``
and ``httpx.AsyncClient(transport=HttpxPipelineTransport(...))``.

The expected trees come from the scenario written in each test. Server latencies are
``asyncio.sleep`` calls, virtual under looptime, so retries and hedges happen exactly as written.
Every test also checks that every span started was ended.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import test_utils, web

from aio_pipeline import (
    AioHttpTransport,
    Client,
    Deadline,
    DeadlineExceededError,
    Pipeline,
    aiohttp_middleware_factory,
    constant_delays,
    get,
)
from aio_pipeline.adapters.aiohttp_client import aiohttp_client_middlewares
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.hedging import ParallelStrategy
from aio_pipeline.middlewares.priority import ClientPriority
from aio_pipeline.middlewares.retry import SequentialStrategy
from aio_pipeline.middlewares.strategy import PerCallStrategy, SingleAttempt
from aio_pipeline.middlewares.tracing import ClientTracing
from aio_pipeline.middlewares.wire import SystemHeaders

pytestmark = [pytest.mark.asyncio, pytest.mark.needs_extras]

HOST = "127.0.0.1"


# --- the SDK, on a provider of the test's own ----------------------------------------------------


@dataclass
class Traces:
    """A ``TracerProvider`` exporting to memory, and a record of every span started and ended."""

    provider: Any
    exporter: Any
    started: list[Any] = field(default_factory=list)
    ended: list[Any] = field(default_factory=list)

    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def named(self, kind: str) -> list[Any]:
        """Finished spans of ``kind`` (``INTERNAL``, ``CLIENT``, ``SERVER``), in start order."""
        return sorted((s for s in self.spans() if s.kind.name == kind), key=lambda s: s.start_time)

    def unended(self) -> list[str]:
        ended = {span.context.span_id for span in self.ended}  # on_end is given a snapshot
        return [span.name for span in self.started if span.context.span_id not in ended]


@pytest.fixture
def traces() -> Traces:
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    recorded = Traces(provider, exporter)

    class Record(SpanProcessor):
        def on_start(self, span: Any, parent_context: Any = None) -> None:
            recorded.started.append(span)

        def on_end(self, span: Any) -> None:
            recorded.ended.append(span)

    provider.add_span_processor(Record())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return recorded


def parent_of(span: Any) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def traceparent_of(span: Any) -> str:
    """The W3C ``traceparent`` header a request carrying ``span``'s context has."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"


# --- services --------------------------------------------------------------------------------------


@dataclass
class Service:
    """A running aiohttp app; ``seen`` holds each request's path and ``traceparent``."""

    base_url: str
    server: test_utils.TestServer
    seen: list[tuple[str, str | None]]
    hits: Counter[str]
    idle: asyncio.Event


Handler = Callable[[web.Request, "Service"], Awaitable[web.StreamResponse]]


@pytest_asyncio.fixture
async def services() -> AsyncIterator[Callable[..., Awaitable[Service]]]:
    """``await services({path: handler}, middlewares)`` starts a service on 127.0.0.1."""
    started: list[Service] = []

    async def start(routes: dict[str, Handler], middlewares: Sequence[Any]) -> Service:
        seen: list[tuple[str, str | None]] = []
        hits: Counter[str] = Counter()
        idle = asyncio.Event()
        idle.set()
        running = 0

        def route(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
            async def handle(request: web.Request) -> web.StreamResponse:
                nonlocal running
                seen.append((request.path, request.headers.get("traceparent")))
                hits[request.path] += 1
                running += 1
                idle.clear()
                try:
                    return await handler(request, service)
                finally:
                    running -= 1
                    if not running:
                        idle.set()

            return handle

        app = web.Application(middlewares=list(middlewares))
        for path, handler in routes.items():
            app.router.add_get(path, route(handler))
        server = test_utils.TestServer(app, host=HOST, port=0)
        await server.start_server()
        service = Service(str(server.make_url("")).rstrip("/"), server, seen, hits, idle)
        started.append(service)
        return service

    yield start
    for service in started:
        await service.server.close()


async def ok(request: web.Request, service: Service) -> web.Response:
    return web.Response(text="ok")


async def flaky(request: web.Request, service: Service) -> web.Response:
    """503 the first time, 200 after."""
    return web.Response(status=503 if service.hits[request.path] == 1 else 200)


async def slow_once(request: web.Request, service: Service) -> web.Response:
    """1 s the first time, at once after."""
    if service.hits[request.path] == 1:
        await asyncio.sleep(1.0)
    return web.Response(text="done")


async def slow(request: web.Request, service: Service) -> web.Response:
    await asyncio.sleep(1.0)
    return web.Response(text="late")


def stack(tracing: ClientTracing, strategy: Any = None) -> list[Any]:
    """The client stack of DESIGN.md with tracing, as ``setup(tracing=True)`` places it."""
    return [
        tracing,
        ClientDeadline(timeout=5),
        ClientPriority(),
        PerCallStrategy(strategy or SingleAttempt(), event_hooks=[tracing.client_event_hook()]),
        tracing.attempts(),
        SystemHeaders(),
    ]


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# --- one trace across three services ------------------------------------------------------------------


async def test_a_call_from_a_through_b_to_c_is_one_trace_with_the_expected_parents(
    traces: Traces, services: Callable[..., Awaitable[Service]], session: aiohttp.ClientSession
) -> None:
    tracing = ClientTracing(tracer_provider=traces.provider)
    server_tracing = aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider)
    c = await services({"/c": ok}, [server_tracing])
    to_c = Client(c.base_url, Pipeline(AioHttpTransport(session), stack(tracing)))

    async def b_handler(request: web.Request, service: Service) -> web.Response:
        async with to_c.request(get("c")) as response:  # B calls C while handling A's request
            return web.Response(text=f"b saw {await response.text()}")

    b = await services({"/b": b_handler}, [server_tracing])
    a = Client(b.base_url, Pipeline(AioHttpTransport(session), stack(tracing)))
    async with a.request(get("b")) as response:
        assert await response.text() == "b saw ok"

    assert traces.unended() == []
    a_call, b_call = traces.named("INTERNAL")
    a_attempt, b_attempt = traces.named("CLIENT")
    b_server, c_server = traces.named("SERVER")
    assert len(traces.spans()) == 6
    assert len({span.context.trace_id for span in traces.spans()}) == 1  # one trace
    assert parent_of(a_call) is None
    assert parent_of(a_attempt) == a_call.context.span_id
    assert parent_of(b_server) == a_attempt.context.span_id
    assert parent_of(b_call) == b_server.context.span_id  # B's outbound call inherits B's request span
    assert parent_of(b_attempt) == b_call.context.span_id
    assert parent_of(c_server) == b_attempt.context.span_id
    # What went on the wire: each attempt's own context, as W3C traceparent.
    assert b.seen == [("/b", traceparent_of(a_attempt))]
    assert c.seen == [("/c", traceparent_of(b_attempt))]
    assert a_attempt.name == "GET b" and b_server.name == "GET /b"
    assert dict(a_attempt.attributes) == {
        "http.request.method": "GET",
        "url.template": "b",
        "server.address": HOST,
        "server.port": int(b.base_url.rsplit(":", 1)[1]),
        "url.scheme": "http",
        "aio_pipeline.attempt": 1,
        "aio_pipeline.attempt.kind": "first",
        "aio_pipeline.deadline.remaining": pytest.approx(5, abs=0.5),
        "aio_pipeline.priority": "normal",
        "http.response.status_code": 200,
    }
    assert b_server.attributes["http.route"] == "/b"
    assert (b_server.attributes["server.address"], b_server.attributes["server.port"]) == (
        HOST,
        int(b.base_url.rsplit(":", 1)[1]),
    )
    assert b_server.attributes["http.response.status_code"] == 200
    assert b_server.attributes["aio_pipeline.attempt"] == 1
    assert b_server.attributes["aio_pipeline.priority"] == "normal"


# --- retries and hedges -----------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_a_retried_call_has_two_consecutive_attempt_spans_the_second_with_resend_count_1(
    traces: Traces, services: Callable[..., Awaitable[Service]], session: aiohttp.ClientSession
) -> None:
    tracing = ClientTracing(tracer_provider=traces.provider)
    backend = await services(
        {"/flaky": flaky}, [aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider)]
    )
    client = Client(backend.base_url, Pipeline(AioHttpTransport(session), stack(tracing)))
    retry = SequentialStrategy(attempts_count=3, delays_provider=constant_delays(delay=0.1))
    async with client.request(get("flaky"), strategy=retry) as response:
        assert response.status == 200

    assert traces.unended() == []
    [call] = traces.named("INTERNAL")
    first, second = traces.named("CLIENT")
    served = traces.named("SERVER")
    assert [parent_of(span) for span in (first, second)] == [call.context.span_id] * 2  # the call's, not each other's
    assert first.end_time <= second.start_time  # consecutive
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.request.resend_count"] == 1
    assert [
        (s.attributes["aio_pipeline.attempt.kind"], s.attributes["http.response.status_code"]) for s in (first, second)
    ] == [
        ("first", 503),
        ("retry", 200),
    ]
    assert first.status.status_code.name == "ERROR" and first.attributes["error.type"] == "503"
    assert second.status.status_code.name == "UNSET"
    assert [(e.name, dict(e.attributes)) for e in call.events] == [
        ("aio_pipeline.client.retry_scheduled", {"next_attempt": 2, "delay": 0.1})
    ]
    assert call.attributes["http.response.status_code"] == 200 and call.attributes["aio_pipeline.attempt"] == 2
    # Each server span is the child of the attempt that reached it.
    assert [(parent_of(s), s.attributes["http.response.status_code"]) for s in served] == [
        (first.context.span_id, 503),
        (second.context.span_id, 200),
    ]
    assert served[0].status.status_code.name == "ERROR"  # a 5xx fails a server span
    assert backend.seen == [("/flaky", traceparent_of(first)), ("/flaky", traceparent_of(second))]


@pytest.mark.looptime
async def test_a_hedged_call_has_overlapping_sibling_attempts_and_the_loser_is_cancelled_not_failed(
    traces: Traces, services: Callable[..., Awaitable[Service]], session: aiohttp.ClientSession
) -> None:
    tracing = ClientTracing(tracer_provider=traces.provider)
    backend = await services(
        {"/slow-once": slow_once}, [aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider)]
    )
    client = Client(backend.base_url, Pipeline(AioHttpTransport(session), stack(tracing)))
    hedge = ParallelStrategy(attempts_count=2, delays_provider=constant_delays(delay=0.2))
    async with client.request(get("slow-once"), strategy=hedge) as response:
        assert response.status == 200
    await backend.idle.wait()  # the first request's handler runs on to its end, on the server

    assert traces.unended() == []
    [call] = traces.named("INTERNAL")
    loser, winner = traces.named("CLIENT")
    assert [parent_of(span) for span in (loser, winner)] == [call.context.span_id] * 2  # siblings
    assert loser.start_time < winner.start_time < loser.end_time  # they overlap
    assert winner.attributes["aio_pipeline.attempt.kind"] == "hedge"
    assert winner.attributes["http.request.resend_count"] == 1
    assert winner.attributes["http.response.status_code"] == 200
    assert loser.attributes["aio_pipeline.outcome"] == "cancelled"
    assert loser.status.status_code.name == "UNSET"  # cancelled, not an error
    assert "error.type" not in loser.attributes and "http.response.status_code" not in loser.attributes
    assert [(e.name, dict(e.attributes)) for e in call.events] == [
        ("aio_pipeline.client.hedge_started", {"attempt": 2, "after": pytest.approx(0.2, abs=0.01)})
    ]
    served = {parent_of(s): s for s in traces.named("SERVER")}
    assert set(served) == {loser.context.span_id, winner.context.span_id}


# --- the three places our stack runs ----------------------------------------------------------------------


async def call_through(place: str, stack_: list[Any], base_url: str, session: aiohttp.ClientSession) -> int:
    url = f"{base_url}/users/7"
    if place == "Client":
        client = Client(base_url, Pipeline(AioHttpTransport(session), stack_))
        async with client.request(get("users/{id}", path_parameters={"id": "7"})) as response:
            return response.status
    if place == "ClientSession":
        async with (
            aiohttp.ClientSession(middlewares=aiohttp_client_middlewares(stack_)) as own,
            own.get(url) as answer,
        ):
            return answer.status
    import httpx

    from aio_pipeline.adapters.httpx_transport import HttpxPipelineTransport

    async with httpx.AsyncClient(transport=HttpxPipelineTransport(stack_)) as client:
        return (await client.get(url)).status_code


@pytest.mark.parametrize("place", ["Client", "ClientSession", "httpx"])
async def test_each_place_our_stack_runs_traces_the_call_and_propagates_the_attempt(
    place: str, traces: Traces, services: Callable[..., Awaitable[Service]], session: aiohttp.ClientSession
) -> None:
    tracing = ClientTracing(tracer_provider=traces.provider)
    backend = await services(
        {"/users/{id}": ok}, [aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider)]
    )
    assert await call_through(place, stack(tracing), backend.base_url, session) == 200

    assert traces.unended() == []
    [call] = traces.named("INTERNAL")
    [attempt] = traces.named("CLIENT")
    [served] = traces.named("SERVER")
    assert parent_of(attempt) == call.context.span_id
    assert parent_of(served) == attempt.context.span_id
    assert backend.seen == [("/users/7", traceparent_of(attempt))]
    assert served.name == "GET /users/{id}" and served.attributes["http.route"] == "/users/{id}"
    assert attempt.attributes["http.response.status_code"] == 200


# --- tracing not configured -----------------------------------------------------------------------------------


async def test_with_no_tracer_provider_configured_nothing_is_recorded_and_the_incoming_trace_passes_through(
    services: Callable[..., Awaitable[Service]], session: aiohttp.ClientSession
) -> None:
    from opentelemetry import trace

    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)  # no SDK: the API alone
    tracing = ClientTracing()  # the global provider
    c = await services({"/c": ok}, [aiohttp_middleware_factory(tracing=True)])
    to_c = Client(c.base_url, Pipeline(AioHttpTransport(session), stack(tracing)))
    recording: list[bool] = []

    async def b_handler(request: web.Request, service: Service) -> web.Response:
        recording.append(trace.get_current_span().is_recording())
        async with to_c.request(get("c")) as response:
            return web.Response(status=response.status)

    b = await services({"/b": b_handler}, [aiohttp_middleware_factory(tracing=True)])
    a = Client(b.base_url, Pipeline(AioHttpTransport(session), stack(tracing)))
    async with a.request(get("b")) as response:  # no trace at all: nothing sent, nothing fails
        assert response.status == 200
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with session.get(f"{b.base_url}/b", headers={"traceparent": incoming}) as answer:
        assert answer.status == 200

    assert recording == [False, False]
    assert b.seen == [("/b", None), ("/b", incoming)]
    # Without an SDK the API's spans are non-recording but carry the caller's context on.
    assert c.seen == [("/c", None), ("/c", incoming)]


# --- no span left open --------------------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_no_span_is_left_unended_when_the_caller_cancels_mid_call(
    traces: Traces, services: Callable[..., Awaitable[Service]], session: aiohttp.ClientSession
) -> None:
    tracing = ClientTracing(tracer_provider=traces.provider)
    backend = await services(
        {"/slow": slow}, [aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider)]
    )
    client = Client(backend.base_url, Pipeline(AioHttpTransport(session), stack(tracing)))
    hedge = ParallelStrategy(attempts_count=2, delays_provider=constant_delays(delay=0.2))

    async def call() -> None:
        async with client.request(get("slow"), strategy=hedge):
            pass

    task = asyncio.create_task(call())
    await asyncio.sleep(0.5)  # both attempts are in flight
    assert backend.hits["/slow"] == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await backend.idle.wait()

    assert traces.unended() == []
    [span] = traces.named("INTERNAL")
    attempts = traces.named("CLIENT")
    assert [s.attributes["aio_pipeline.outcome"] for s in (span, *attempts)] == ["cancelled"] * 3
    assert [s.status.status_code.name for s in (span, *attempts)] == ["UNSET"] * 3
    assert len(traces.named("SERVER")) == 2


@pytest.mark.looptime
async def test_no_span_is_left_unended_when_the_deadline_fires_and_the_attempt_fails_with_it(
    traces: Traces, services: Callable[..., Awaitable[Service]], session: aiohttp.ClientSession
) -> None:
    tracing = ClientTracing(tracer_provider=traces.provider)
    backend = await services(
        {"/slow": slow}, [aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider)]
    )
    client = Client(backend.base_url, Pipeline(AioHttpTransport(session), stack(tracing)))
    with pytest.raises(DeadlineExceededError):
        async with client.request(get("slow"), deadline=Deadline.from_timeout(0.5)):
            pass
    await backend.idle.wait()

    assert traces.unended() == []
    [call] = traces.named("INTERNAL")
    [attempt] = traces.named("CLIENT")
    for span in (call, attempt):
        assert span.attributes["error.type"] == "DeadlineExceededError"
        assert span.status.status_code.name == "ERROR"
    assert attempt.attributes["aio_pipeline.deadline.remaining"] == pytest.approx(0.5, abs=0.01)
    [served] = traces.named("SERVER")
    assert parent_of(served) == attempt.context.span_id
    assert served.attributes["aio_pipeline.deadline.remaining"] == pytest.approx(0.5, abs=0.01)


# --- setup(tracing=True): the familiar client, traced, its logs and metrics pointing at the trace ---


async def test_setup_with_tracing_traces_each_attempt_and_logs_and_metrics_point_at_the_trace(
    traces: Traces, services: Callable[..., Awaitable[Service]], session: aiohttp.ClientSession
) -> None:
    from prometheus_client import CollectorRegistry
    from prometheus_client.openmetrics.exposition import generate_latest
    from structlog.testing import capture_logs

    import aio_pipeline as aio_request

    backend = await services(
        {"/flaky": flaky}, [aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider)]
    )
    registry = CollectorRegistry()
    client = aio_request.setup(
        transport=AioHttpTransport(session),
        endpoint=backend.base_url,
        tracing=True,
        tracer_provider=traces.provider,
        metrics_provider=aio_request.PrometheusMetricsProvider(registry=registry),
        circuit_breaker=aio_request.DefaultCircuitBreaker[str, Any](
            break_duration=1.0, sampling_duration=10.0, minimum_throughput=100, failure_threshold=1.0
        ),
        safe_method_strategy=aio_request.sequential_strategy(
            attempts_count=2, delays_provider=constant_delays(delay=0.01)
        ),
        call_middlewares=[aio_request.ClientLog()],
    )
    with capture_logs() as logs:
        async with client.request(get("flaky")) as response:
            assert response.status == 200

    assert traces.unended() == []
    [call] = traces.named("INTERNAL")
    first, second = traces.named("CLIENT")
    assert [parent_of(span) for span in (first, second)] == [call.context.span_id] * 2
    assert second.attributes["http.request.resend_count"] == 1
    served = traces.named("SERVER")
    assert [parent_of(span) for span in served] == [first.context.span_id, second.context.span_id]
    assert [event.name for event in call.events] == ["aio_pipeline.client.retry_scheduled"]
    [logged] = [entry for entry in logs if entry["event"] == "aio_pipeline.client.call"]  # a retried call
    assert logged["span_id"] == f"{call.context.span_id:016x}"
    assert logged["trace_id"] == f"{call.context.trace_id:032x}"
    assert f'trace_id="{call.context.trace_id:032x}"' in generate_latest(registry).decode()


async def test_setup_takes_a_tracer_provider_only_with_tracing(traces: Traces, session: aiohttp.ClientSession) -> None:
    import aio_pipeline as aio_request

    with pytest.raises(ValueError, match="tracer_provider"):
        aio_request.setup(
            transport=AioHttpTransport(session), endpoint="http://127.0.0.1:1/", tracer_provider=traces.provider
        )
    with pytest.raises(ValueError, match="tracing must be True or False"):
        aio_request.setup(transport=AioHttpTransport(session), endpoint="http://127.0.0.1:1/", tracing="yes")  # type: ignore[arg-type]
