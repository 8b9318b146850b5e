"""``middlewares.tracing`` piece by piece: the strategies' and breaker's events on the call span,
the server span's rejections and statuses, adopting an instrumentation's span, trace ids in logs
and exemplars in the OpenMetrics exposition, the wiring ``setup()`` and the server factory use,
and what happens without OpenTelemetry installed.

Spans go to the SDK's ``InMemorySpanExporter`` on a ``TracerProvider`` of each test's own; servers
are real aiohttp apps on 127.0.0.1; a scripted transport stands in for the network only where one
middleware's reaction to given answers is under test.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, ClassVar

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import test_utils, web

from aio_pipeline import (
    CircuitOpenError,
    Client,
    DefaultCircuitBreaker,
    Pipeline,
    Request,
    Response,
    RetryBudget,
    Transport,
    aiohttp_middleware_factory,
    constant_delays,
    get,
)
from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.hedging import ParallelStrategy
from aio_pipeline.middlewares.retry import SequentialStrategy
from aio_pipeline.middlewares.shedding import LoadShedding
from aio_pipeline.middlewares.strategy import PerCallStrategy, SingleAttempt
from aio_pipeline.middlewares.tracing import (
    ClientTracing,
    ServerTracing,
    client_tracing_setup,
    current_trace_ids,
    with_trace_ids,
)
from aio_pipeline.middlewares.wire import SystemHeaders

HOST = "127.0.0.1"
extras = pytest.mark.needs_extras


# --- without OpenTelemetry ------------------------------------------------------------------------


def test_the_package_and_this_module_import_without_importing_opentelemetry() -> None:
    code = (
        "import sys, aio_pipeline, aio_pipeline.middlewares;"
        "from aio_pipeline import aiohttp_middleware_factory;"
        "aiohttp_middleware_factory();"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_opentelemetry_turning_tracing_on_fails_at_once_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    hint = r"pip install 'aio-pipeline\[otel\]'"
    for use in (
        ClientTracing,
        ServerTracing,
        lambda: aiohttp_middleware_factory(tracing=True),  # when the app is set up, not at its first request
        lambda: client_tracing_setup(),
        current_trace_ids,
    ):
        with pytest.raises(ImportError, match=hint):
            use()


def test_the_factory_refuses_a_tracer_provider_without_tracing() -> None:
    with pytest.raises(ValueError, match="tracer_provider is used only with tracing=True"):
        aiohttp_middleware_factory(tracer_provider=object())
    with pytest.raises(ValueError, match="tracing must be True or False"):
        aiohttp_middleware_factory(tracing="yes")  # type: ignore[arg-type]


# --- the SDK ------------------------------------------------------------------------------------------


class Traces:
    """A ``TracerProvider`` of the test's own, exporting to memory."""

    def __init__(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    def of_kind(self, kind: str) -> list[Any]:
        spans = [s for s in self.exporter.get_finished_spans() if s.kind.name == kind]
        return sorted(spans, key=lambda s: s.start_time)

    def events(self, span: Any) -> list[tuple[str, dict[str, Any]]]:
        return [(event.name, dict(event.attributes)) for event in span.events]


@pytest.fixture
def traces() -> Traces:
    return Traces()


Step = Callable[[Request], Awaitable[Response]]


class Scripted(Transport):
    """Answers attempt by attempt from ``steps``; ``sent`` holds each attempt's request."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        self.sent: list[Request] = []

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        self.sent.append(request)
        return await self.steps[len(self.sent) - 1](request)


def answer(status: int, headers: dict[str, str] | None = None) -> Step:
    async def step(request: Request) -> Response:
        return Response(status, headers, request=request)

    return step


def traced_client(tracing: ClientTracing, transport: Transport, strategy: Any, *inner: Any) -> Client:
    pipeline = Pipeline(
        transport,
        [
            tracing,
            ClientDeadline(timeout=10),
            PerCallStrategy(strategy, event_hooks=[tracing.client_event_hook()]),
            tracing.attempts(),
            *inner,
            SystemHeaders(),
        ],
    )
    return Client("http://api.example:8080/", pipeline)


# --- the call span's events -----------------------------------------------------------------------------


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_retry_after_honoured_then_refused_and_a_spent_budget_are_events_on_the_call_span(
    traces: Traces,
) -> None:
    tracing = ClientTracing(tracer_provider=traces.provider)
    transport = Scripted(
        [answer(503, {"Retry-After": "2"}), answer(503, {"Retry-After": "600"}), answer(500), answer(500)]
    )
    retry = SequentialStrategy(attempts_count=3, delays_provider=constant_delays(delay=0.1))
    client = traced_client(tracing, transport, retry)
    async with client.request(get("orders")) as response:
        assert response.status == 503  # the second answer asks for more than the deadline leaves
    spent = SequentialStrategy(attempts_count=3, budget=RetryBudget(ratio=0, min_per_second=0))
    async with client.request(get("orders"), strategy=spent) as response:
        assert response.status == 500

    honoured, spent_call = traces.of_kind("INTERNAL")
    assert traces.events(honoured) == [
        ("aio_pipeline.client.retry_after", {"retry_after": 2.0, "honoured": True, "delay": 2.0}),
        ("aio_pipeline.client.retry_scheduled", {"next_attempt": 2, "delay": 2.0}),
        (
            "aio_pipeline.client.retry_after",
            {"retry_after": 600.0, "honoured": False, "limit": pytest.approx(8, abs=0.1)},
        ),
    ]
    assert traces.events(spent_call) == [
        ("aio_pipeline.client.retry_budget_exhausted", {"attempt": 2, "kind": "retry"})
    ]
    assert spent_call.attributes["error.type"] == "500" and spent_call.status.status_code.name == "ERROR"
    assert len(traces.of_kind("CLIENT")) == 3


@extras
@pytest.mark.asyncio
async def test_an_open_circuit_is_an_event_on_the_call_span_and_fails_the_attempt_span(traces: Traces) -> None:
    tracing = ClientTracing(tracer_provider=traces.provider)
    breaker: DefaultCircuitBreaker[str, Any] = DefaultCircuitBreaker(
        break_duration=10, failure_threshold=1.0, minimum_throughput=100, sampling_duration=10, consecutive_failures=1
    )
    breaker.subscribe(tracing.circuit_breaker_hook())
    transport = Scripted([answer(500)])
    client = traced_client(tracing, transport, SingleAttempt(), CircuitBreakerMiddleware(breaker))
    async with client.request(get("orders")) as response:
        assert response.status == 500  # the failure that opens the circuit
    with pytest.raises(CircuitOpenError):
        async with client.request(get("orders")):
            pass

    opened, refused = traces.of_kind("INTERNAL")
    assert traces.events(opened) == [
        (
            "aio_pipeline.circuit_breaker.state_changed",
            {"endpoint": "http://api.example:8080", "old": "closed", "new": "open", "reason": "consecutive_failures"},
        )
    ]
    [(name, attributes)] = traces.events(refused)
    assert name == "aio_pipeline.circuit_breaker.open" and attributes["attempt"] == 1
    assert attributes["retry_after"] == pytest.approx(10, abs=0.5)
    _, refused_attempt = traces.of_kind("CLIENT")
    assert refused_attempt.attributes["error.type"] == "CircuitOpenError"
    assert refused.attributes["error.type"] == "CircuitOpenError"
    assert len(transport.sent) == 1  # the open circuit sent nothing


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_each_hedge_is_a_child_of_the_call_span_and_injects_its_own_context(traces: Traces) -> None:
    async def hang(request: Request) -> Response:
        await asyncio.sleep(3600)
        raise AssertionError("never")

    tracing = ClientTracing(tracer_provider=traces.provider)
    transport = Scripted([hang, hang, answer(200)])
    hedge = ParallelStrategy(attempts_count=3, delays_provider=constant_delays(delay=0.1))
    async with traced_client(tracing, transport, hedge).request(get("orders")) as response:
        assert response.status == 200

    [call] = traces.of_kind("INTERNAL")
    attempts = traces.of_kind("CLIENT")
    assert [a.parent.span_id for a in attempts] == [call.context.span_id] * 3  # never the previous hedge
    assert [a.attributes.get("aio_pipeline.outcome") for a in attempts] == ["cancelled", "cancelled", None]
    sent = [r.headers["traceparent"].split("-")[2] for r in transport.sent]
    assert sent == [f"{a.context.span_id:016x}" for a in attempts]
    assert [e[0] for e in traces.events(call)] == ["aio_pipeline.client.hedge_started"] * 2


@extras
@pytest.mark.asyncio
async def test_span_names_stay_bounded_and_odd_methods_follow_the_conventions(traces: Traces) -> None:
    tracing = ClientTracing(tracer_provider=traces.provider, max_routes=1)
    transport = Scripted([answer(200)] * 3)
    client = traced_client(tracing, transport, SingleAttempt())
    for request in (get("users/{id}", path_parameters={"id": "1"}), get("orders/7"), Request(method="PURGE", url="x")):
        async with client.request(request):
            pass
    assert [(s.name, s.attributes.get("url.template")) for s in traces.of_kind("CLIENT")] == [
        ("GET users/{id}", "users/{id}"),
        ("GET", None),  # past max_routes: no unbounded names
        ("HTTP", None),
    ]
    odd = traces.of_kind("CLIENT")[2].attributes
    assert odd["http.request.method"] == "_OTHER" and odd["http.request.method_original"] == "PURGE"


# --- the server span -------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    servers: list[test_utils.TestServer] = []

    async def start(middlewares: list[Any], handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> str:
        app = web.Application(middlewares=middlewares)
        app.router.add_get("/items/{id}", handler)
        server = test_utils.TestServer(app, host=HOST, port=0)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("")).rstrip("/")

    yield start
    for server in servers:
        await server.close()


async def fine(request: web.Request) -> web.Response:
    return web.Response(text="fine")


async def broken(request: web.Request) -> web.Response:
    raise RuntimeError("boom")


@extras
@pytest.mark.asyncio
async def test_the_server_span_shows_rejections_and_the_status_that_went_on_the_wire(
    traces: Traces, serve: Callable[..., Awaitable[str]]
) -> None:
    factory = aiohttp_middleware_factory(
        tracing=True,
        tracer_provider=traces.provider,
        middlewares=[LoadShedding(max_concurrency=1, high_reserve=0, normal_reserve=0)],
    )
    base = await serve([factory], fine)
    base_broken = await serve([factory], broken)
    entered, gate = asyncio.Event(), asyncio.Event()

    async def waiting(request: web.Request) -> web.Response:
        entered.set()
        await gate.wait()
        return web.Response(text="done")

    base_busy = await serve([factory], waiting)
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/items/1", headers={"X-Request-Timeout": "0"}) as response:
            assert response.status == 408
        async with session.get(f"{base_broken}/items/2", headers={"X-Service-Name": "billing"}) as response:
            assert response.status == 500
        busy = asyncio.create_task(session.get(f"{base_busy}/items/3"))
        await entered.wait()  # it holds the only slot
        async with session.get(f"{base_busy}/items/4") as response:
            assert response.status == 503
        gate.set()
        async with await busy as response:
            assert response.status == 200

    expired, failed, served, shed = traces.of_kind("SERVER")  # by start: the busy one came first
    assert expired.name == "GET /items/{id}"
    assert expired.attributes["http.response.status_code"] == 408
    assert expired.attributes["aio_pipeline.rejected"] == "deadline"
    assert expired.attributes["aio_pipeline.deadline.remaining"] == 0.0
    assert traces.events(expired) == [("aio_pipeline.server.rejected", {"reason": "deadline"})]
    assert expired.status.status_code.name == "UNSET"  # a 4xx is the client's, not the server's failure
    assert failed.attributes["http.response.status_code"] == 500 and failed.attributes["error.type"] == "500"
    assert failed.attributes["aio_pipeline.client"] == "billing"
    assert failed.status.status_code.name == "ERROR"
    assert [e.name for e in failed.events] == ["exception"]
    assert dict(failed.events[0].attributes)["exception.type"] == "RuntimeError"
    assert shed.attributes["http.response.status_code"] == 503
    assert shed.attributes["aio_pipeline.rejected"] == "overloaded" and shed.status.status_code.name == "ERROR"
    assert served.attributes["http.response.status_code"] == 200 and "aio_pipeline.rejected" not in served.attributes


def instrumentation_like(tracer_provider: Any, *, parent_from_request: bool = True) -> Any:
    """An aiohttp middleware opening a SERVER span as opentelemetry-instrumentation-aiohttp-server
    does (``start_as_current_span(context=extract(request headers), kind=SERVER)``); or, with
    ``parent_from_request=False``, a SERVER span that is not this request's (it has its own
    parent), as one leaking into the request's task would be."""
    from opentelemetry import propagate, trace

    tracer = tracer_provider.get_tracer("instrumentation")

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if parent_from_request:
            context = propagate.extract(request.headers)
        else:
            with tracer.start_as_current_span("startup") as startup:
                context = trace.set_span_in_context(startup)
        with tracer.start_as_current_span("GET", context=context, kind=trace.SpanKind.SERVER):
            return await handler(request)

    return middleware


@extras
@pytest.mark.asyncio
@pytest.mark.parametrize("carries_context", [True, False], ids=["with traceparent", "without"])
async def test_a_server_span_the_instrumentation_opened_for_this_request_is_taken_not_doubled(
    traces: Traces, serve: Callable[..., Awaitable[str]], carries_context: bool
) -> None:
    ours = aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider)
    base = await serve([instrumentation_like(traces.provider), ours], fine)
    headers = {"X-Service-Name": "web"}
    if carries_context:
        headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with aiohttp.ClientSession() as session, session.get(f"{base}/items/9", headers=headers) as response:
        assert response.status == 200

    [span] = traces.of_kind("SERVER")  # one span: the instrumentation's, with ours added
    assert span.instrumentation_scope.name == "instrumentation"
    assert span.attributes["http.route"] == "/items/{id}" and span.attributes["aio_pipeline.client"] == "web"
    assert (span.parent is not None) == carries_context


@extras
@pytest.mark.asyncio
async def test_a_server_span_that_is_not_this_requests_is_left_alone_and_ours_opened(
    traces: Traces, serve: Callable[..., Awaitable[str]]
) -> None:
    ours = aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider)
    base = await serve([instrumentation_like(traces.provider, parent_from_request=False), ours], fine)
    async with aiohttp.ClientSession() as session, session.get(f"{base}/items/9") as response:
        assert response.status == 200
    theirs, mine = traces.of_kind("SERVER")
    assert theirs.instrumentation_scope.name == "instrumentation" and "http.route" not in theirs.attributes
    assert mine.instrumentation_scope.name == "aio_pipeline" and mine.attributes["http.route"] == "/items/{id}"
    assert mine.parent is None  # the request carried no context: a root, as the conventions have it


# --- logs and exemplars point at traces --------------------------------------------------------------------


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    import structlog

    with structlog.testing.capture_logs() as captured:
        yield captured


@extras
@pytest.mark.asyncio
async def test_log_events_carry_the_ids_of_the_spans_they_belong_to(
    traces: Traces, serve: Callable[..., Awaitable[str]], logs: list[dict[str, Any]]
) -> None:
    from aio_pipeline.middlewares.log import ClientLog, ServerLog

    factory = aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider, outer_middlewares=[ServerLog()])
    base = await serve([factory], fine)
    tracing = ClientTracing(tracer_provider=traces.provider)
    async with aiohttp.ClientSession() as session:
        from aio_pipeline import AioHttpTransport

        pipeline = Pipeline(
            AioHttpTransport(session),
            [
                tracing,
                ClientLog(every_call=True, trace_ids=current_trace_ids),
                ClientDeadline(),
                PerCallStrategy(),
                tracing.attempts(),
                SystemHeaders(),
            ],
        )
        async with Client(base, pipeline).request(get("items/{id}", path_parameters={"id": "1"})):
            pass
        untraced = Pipeline(AioHttpTransport(session), [ClientLog(every_call=True, trace_ids=current_trace_ids)])
        async with Client(base, untraced).request(get("items/2")):
            pass

    [call] = traces.of_kind("INTERNAL")
    server_spans = traces.of_kind("SERVER")
    ids = {(e["event"], e.get("trace_id"), e.get("span_id")) for e in logs}
    hexed = [(f"{s.context.trace_id:032x}", f"{s.context.span_id:016x}") for s in (call, *server_spans)]
    assert ids == {
        ("aio_pipeline.client.call", *hexed[0]),  # the call span, active around ClientLog
        ("aio_pipeline.server.request", *hexed[1]),
        ("aio_pipeline.server.request", *hexed[2]),  # the untraced call still reached a traced server
        ("aio_pipeline.client.call", None, None),  # no active span, no ids
    }
    assert hexed[1][0] == hexed[0][0] and hexed[2][0] != hexed[0][0]


def openmetrics(registry: Any) -> str:
    from prometheus_client.openmetrics.exposition import generate_latest

    return generate_latest(registry).decode()


@extras
@pytest.mark.asyncio
async def test_histogram_buckets_carry_the_trace_as_an_exemplar_in_the_openmetrics_exposition(
    traces: Traces, serve: Callable[..., Awaitable[str]]
) -> None:
    from prometheus_client import CollectorRegistry

    from aio_pipeline import AioHttpTransport
    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    server_registry, client_registry, plain_registry = CollectorRegistry(), CollectorRegistry(), CollectorRegistry()
    server_side = PrometheusMetricsProvider(registry=server_registry)
    factory = aiohttp_middleware_factory(tracing=True, tracer_provider=traces.provider, metrics_provider=server_side)
    base = await serve([factory], fine)
    pieces = client_tracing_setup(
        tracer_provider=traces.provider, metrics_provider=PrometheusMetricsProvider(registry=client_registry)
    )
    plain = PrometheusMetricsProvider(registry=plain_registry)
    async with aiohttp.ClientSession() as session:
        provider = pieces.metrics_provider
        pipeline = Pipeline(
            AioHttpTransport(session),
            [
                pieces.call_middleware,
                provider.client_call_middleware(),
                plain.client_call_middleware(),  # no trace_ids: no exemplar
                ClientDeadline(),
                PerCallStrategy(),
                pieces.attempt_middleware,
                provider.client_attempt_middleware(),
                SystemHeaders(),
            ],
        )
        async with Client(base, pipeline).request(get("items/{id}", path_parameters={"id": "5"})):
            pass

    [call] = traces.of_kind("INTERNAL")
    [attempt] = traces.of_kind("CLIENT")
    [served] = traces.of_kind("SERVER")

    def exemplars(text: str, metric: str) -> list[str]:
        return [
            line.split(" # ")[1].split("}")[0] + "}"
            for line in text.splitlines()
            if line.startswith(f"{metric}_bucket") and " # " in line
        ]

    def of(span: Any) -> str:
        return f'{{span_id="{span.context.span_id:016x}",trace_id="{span.context.trace_id:032x}"}}'

    client_text = openmetrics(client_registry)
    assert exemplars(client_text, "aio_pipeline_client_request_duration_seconds") == [of(call)]
    assert exemplars(client_text, "aio_pipeline_client_attempt_duration_seconds") == [of(attempt)]
    assert exemplars(openmetrics(server_registry), "aio_pipeline_server_request_duration_seconds") == [of(served)]
    plain_text = openmetrics(plain_registry)
    assert "aio_pipeline_client_request_duration_seconds_count" in plain_text and " # {" not in plain_text
    # The exemplar sits on the lowest bucket holding the observation: the 5 ms bucket on loopback.
    line = next(line for line in client_text.splitlines() if " # " in line and "request_duration" in line)
    assert 'le="0.005"' in line or 'le="0.01"' in line or 'le="0.025"' in line


# --- the wiring setup() and the factory use ------------------------------------------------------------------


@extras
def test_with_trace_ids_sets_it_on_our_observers_only() -> None:
    from aio_pipeline.middlewares.log import ClientLog, ServerLog
    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    class MyLog(ClientLog):
        pass

    mine = MyLog()
    assert with_trace_ids(mine) is mine  # a user's subclass is used as given
    given = ClientLog(trace_ids=lambda: None)
    assert with_trace_ids(given) is given  # one that has its own keeps it
    for ours in (ClientLog(every_call=True), ServerLog(client_header_name="X-Caller"), PrometheusMetricsProvider()):
        changed = with_trace_ids(ours)
        assert changed.trace_ids is current_trace_ids
        assert dataclass_fields(changed) == {**dataclass_fields(ours), "trace_ids": current_trace_ids}
    something = object()
    assert with_trace_ids(something) is something


def dataclass_fields(thing: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(thing, f.name) for f in dataclasses.fields(thing) if f.init}


@extras
@pytest.mark.asyncio
async def test_client_tracing_setup_gives_the_pieces_setup_places(traces: Traces) -> None:
    from aio_pipeline.middlewares.log import ClientLog

    log = ClientLog()
    pieces = client_tracing_setup(tracer_provider=traces.provider, call_middlewares=[log, SystemHeaders()])
    assert pieces.call_middleware is pieces.observer and pieces.metrics_provider is None
    assert pieces.call_middlewares[0].trace_ids is current_trace_ids and pieces.call_middlewares[0] is not log
    assert pieces.call_middlewares[1] == SystemHeaders()
    transport = Scripted([answer(503), answer(200)])
    retry = SequentialStrategy(attempts_count=2, delays_provider=constant_delays(delay=0))
    pipeline = Pipeline(
        transport,
        [
            pieces.call_middleware,
            ClientDeadline(),
            PerCallStrategy(retry, event_hooks=[pieces.observer.client_event_hook()]),
            pieces.attempt_middleware,
            SystemHeaders(),
        ],
    )
    async with Client("http://api.example/", pipeline).request(get("x")) as response:
        assert response.status == 200
    [call] = traces.of_kind("INTERNAL")
    assert [a.parent.span_id for a in traces.of_kind("CLIENT")] == [call.context.span_id] * 2
    assert [e[0] for e in traces.events(call)] == ["aio_pipeline.client.retry_scheduled"]


@extras
@pytest.mark.asyncio
async def test_server_tracing_driven_directly_records_what_call_next_gave(traces: Traces) -> None:
    class Inbound:
        method = "GET"
        path = "/direct"
        headers: ClassVar = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}

    class Answer:
        status = 204

    async def handler(request: Any) -> Any:
        return Answer()

    assert (await ServerTracing(tracer_provider=traces.provider)(Inbound(), handler)).status == 204
    [span] = traces.of_kind("SERVER")
    assert span.name == "GET" and span.attributes["http.response.status_code"] == 204
    assert f"{span.context.trace_id:032x}" == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent.span_id == 0x00F067AA0BA902B7
