"""Server metrics, logs and OpenTelemetry record the status that went on the wire (issue 13,
defects 6, 10, 11 and 12), and a response that has started is never followed by a second one.

Every test runs a real aiohttp server on 127.0.0.1 behind ``aiohttp_middleware_factory`` with
all three observers at once: ``PrometheusMetricsProvider`` on a real ``CollectorRegistry``,
``ServerLog`` under structlog's ``capture_logs`` and ``OpenTelemetryMetricsProvider`` over the
SDK's ``InMemoryMetricReader``. What a real client received is compared with what each recorded.
Time is virtual (looptime) wherever a deadline is involved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from aio_pipeline import AioHttpTransport, Client, OverloadedError, Pipeline, aiohttp_middleware_factory, get
from aio_pipeline.middlewares import SystemHeaders
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.log import ServerLog
from aio_pipeline.middlewares.otel import OpenTelemetryMetricsProvider
from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

if TYPE_CHECKING:
    from tests.conftest import StartRawServer

pytestmark = [pytest.mark.asyncio, pytest.mark.needs_extras]

HOST = "127.0.0.1"
Routes = Callable[[web.Application], None]
DURATION = "aio_pipeline_server_request_duration_seconds_count"


@dataclass
class Observers:
    """The three observers of one test, and what each recorded, in comparable shapes."""

    registry: Any
    reader: Any
    otel: OpenTelemetryMetricsProvider
    logs: list[dict[str, Any]]

    def factory(self, **options: Any) -> Any:
        return aiohttp_middleware_factory(
            metrics_provider=PrometheusMetricsProvider(registry=self.registry),
            outer_middlewares=[ServerLog(), self.otel.server_middleware()],
            **options,
        )

    def samples(self, name: str) -> dict[tuple[str, ...], float]:
        """``{(route, status or reason): value}`` of the Prometheus samples called ``name``."""
        found: dict[tuple[str, ...], float] = {}
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == name:
                    labels = sample.labels
                    found[(labels["route"], labels.get("status") or labels["reason"])] = sample.value
        return found

    def in_flight(self) -> set[float]:
        return set(self.samples_of("aio_pipeline_server_requests_in_flight"))

    def samples_of(self, name: str) -> list[float]:
        return [s.value for m in self.registry.collect() for s in m.samples if s.name == name]

    def access_log(self) -> list[tuple[Any, ...]]:
        """``(route, status, level, error, rejected, aborted)`` of each access log event."""
        return [
            (e["route"], e.get("status"), e["log_level"], e.get("error"), e.get("rejected"), e.get("aborted"))
            for e in self.logs
            if e["event"] == "aio_pipeline.server.request"
        ]

    def otel_points(self, name: str = "http.server.request.duration") -> list[tuple[Any, ...]]:
        """``(route, status code, error.type, count or value)`` of each OpenTelemetry point."""
        found = []
        for resource in self.reader.get_metrics_data().resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        for point in metric.data.data_points:
                            attributes = point.attributes
                            found.append(
                                (
                                    attributes.get("http.route", "-"),
                                    attributes.get("http.response.status_code", "-"),
                                    attributes.get("error.type", attributes.get("aio_pipeline.reason", "-")),
                                    getattr(point, "count", getattr(point, "value", None)),
                                )
                            )
        return sorted(found, key=str)


@pytest.fixture
def observers() -> Iterator[Observers]:
    prometheus_client = pytest.importorskip("prometheus_client")
    sdk = pytest.importorskip("opentelemetry.sdk.metrics")
    export = pytest.importorskip("opentelemetry.sdk.metrics.export")
    testing = pytest.importorskip("structlog.testing")
    reader = export.InMemoryMetricReader()
    otel = OpenTelemetryMetricsProvider(meter_provider=sdk.MeterProvider(metric_readers=[reader]))
    with testing.capture_logs() as logs:
        yield Observers(prometheus_client.CollectorRegistry(), reader, otel, logs)


@asynccontextmanager
async def serve(middleware: Any, routes: Routes) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[middleware])
    routes(app)
    async with TestClient(TestServer(app, host=HOST)) as client:
        yield client


async def status_of(client: TestClient[web.Request, web.Application], path: str, **headers: str) -> int:
    async with client.get(path, headers={k.replace("_", "-"): v for k, v in headers.items()}) as response:
        await response.read()
        return response.status


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(10)
    return web.Response(text="slow but done")


# --- defect 6: a handler cancelled at its deadline ran; it was not rejected ---------------------


@pytest.mark.looptime
async def test_defect_6_a_handler_cancelled_at_its_deadline_is_a_408_request_not_a_rejection(
    observers: Observers,
) -> None:
    def routes(app: web.Application) -> None:
        app.router.add_get("/slow", slow)

    async with serve(observers.factory(cancel_on_timeout=True), routes) as client:
        assert await status_of(client, "/slow", X_Request_Timeout="1") == 408  # ran, cancelled at 1 s
        assert await status_of(client, "/slow", X_Request_Timeout="0") == 408  # refused: never ran

    assert observers.samples(DURATION) == {("/slow", "408"): 2}
    assert observers.samples("aio_pipeline_server_rejected_total") == {("/slow", "deadline"): 1}
    assert observers.access_log() == [
        ("/slow", 408, "warning", "DeadlineExceededError", None, None),
        ("/slow", 408, "warning", "DeadlineRejectedError", "deadline", None),
    ]
    assert observers.otel_points() == [("/slow", 408, "-", 2)]
    assert observers.otel_points("aio_pipeline.server.rejected") == [("/slow", "-", "deadline", 1)]


# --- defect 11: exceptions are recorded with the status aiohttp sent for them -------------------


@pytest.mark.looptime
async def test_defect_11_server_records_the_status_aiohttp_sent(observers: Observers) -> None:
    async def outbound_404(request: web.Request) -> web.Response:
        # A handler's own outbound call, raise_for_status() on a real 404 from this very server.
        async with aiohttp.ClientSession(raise_for_status=True) as session:
            await session.get(str(request.url.with_path("/nowhere")))
        return web.Response(text="unreachable")

    async def times_out(request: web.Request) -> web.Response:
        async with asyncio.timeout(0.5):  # a plain TimeoutError, not our deadline
            await asyncio.sleep(10)
        return web.Response(text="unreachable")

    def routes(app: web.Application) -> None:
        app.router.add_get("/outbound-404", outbound_404)
        app.router.add_get("/times-out", times_out)
        app.router.add_get("/slow", slow)

    async with serve(observers.factory(expired_status=504, cancel_on_timeout=True), routes) as client:
        assert await status_of(client, "/outbound-404") == 500
        assert await status_of(client, "/times-out") == 504
        assert await status_of(client, "/slow", X_Request_Timeout="0") == 504  # refused, expired_status
        assert await status_of(client, "/slow", X_Request_Timeout="1") == 504  # cancelled at 1 s

    assert observers.samples(DURATION) == {
        ("unmatched", "404"): 1,  # the outbound call itself, answered by aiohttp's HTTPNotFound
        ("/outbound-404", "500"): 1,
        ("/times-out", "504"): 1,
        ("/slow", "504"): 2,
    }
    assert observers.access_log() == [
        ("unmatched", 404, "info", "HTTPNotFound", None, None),
        ("/outbound-404", 500, "warning", "ClientResponseError", None, None),
        ("/times-out", 504, "warning", "TimeoutError", None, None),
        ("/slow", 504, "warning", "DeadlineRejectedError", "deadline", None),
        ("/slow", 504, "warning", "DeadlineExceededError", None, None),
    ]
    assert observers.otel_points() == [
        ("-", 404, "-", 1),
        ("/outbound-404", 500, "500", 1),
        ("/slow", 504, "504", 2),
        ("/times-out", 504, "504", 1),
    ]


# --- defect 12: FileResponse and static routes choose their status when prepared ---------------


async def test_defect_12_file_responses_and_static_routes_are_recorded_with_the_status_sent(
    observers: Observers, tmp_path: Path
) -> None:
    (tmp_path / "hello.txt").write_text("hello world")

    async def file(request: web.Request) -> web.FileResponse:
        return web.FileResponse(tmp_path / request.match_info["name"])

    def routes(app: web.Application) -> None:
        app.router.add_get("/file/{name}", file)
        app.router.add_static("/static", tmp_path)

    sent: list[int] = []
    async with serve(observers.factory(), routes) as client:
        async with client.get("/static/hello.txt") as response:
            assert await response.text() == "hello world"
            etag = response.headers["ETag"]
            sent.append(response.status)
        for path, headers in [
            ("/static/missing.txt", {}),
            ("/static/hello.txt", {"If-None-Match": etag}),
            ("/static/hello.txt", {"Range": "bytes=0-4"}),
            ("/static/hello.txt", {"Range": "bytes=100-200"}),
            ("/file/missing.txt", {}),
            ("/file/hello.txt", {"Range": "bytes=6-10"}),
        ]:
            async with client.get(path, headers=headers) as response:
                await response.read()
                sent.append(response.status)

    assert sent == [200, 404, 304, 206, 416, 404, 206]
    static = "/static"  # the static resource's canonical template
    assert observers.samples(DURATION) == {
        (static, "200"): 1,
        (static, "404"): 1,
        (static, "304"): 1,
        (static, "206"): 1,
        (static, "416"): 1,
        ("/file/{name}", "404"): 1,
        ("/file/{name}", "206"): 1,
    }
    assert [(route, status, level) for route, status, level, *_ in observers.access_log()] == [
        (static, 200, "info"),
        (static, 404, "info"),
        (static, 304, "info"),
        (static, 206, "info"),
        (static, 416, "info"),
        ("/file/{name}", 404, "info"),
        ("/file/{name}", 206, "info"),
    ]
    assert [(route, status, count) for route, status, _, count in observers.otel_points()] == [
        ("/file/{name}", 206, 1),
        ("/file/{name}", 404, 1),
        (static, 200, 1),
        (static, 206, 1),
        (static, 304, 1),
        (static, 404, 1),
        (static, 416, 1),
    ]
    assert observers.in_flight() == {0}


# --- defect 10: no second response into one that has started -----------------------------------


def stream_and(then: Callable[[], Awaitable[None]]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A chunked event stream (as SSE sends): prepared, one event written, then ``then()``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await then()
        await response.write(b"data: never sent\n\n")
        return response

    return handler


def websocket_and(then: Callable[[], Awaitable[None]]) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A WebSocket: upgraded, one message sent, then ``then()``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("first")
        await then()
        await ws.close()
        return ws

    return handler


async def outbound_call(url: str) -> None:
    """A call through our client pipeline to a server that never answers: it inherits the
    request's deadline, and outlives it (``DeadlineExceededError`` after 1 s)."""
    async with aiohttp.ClientSession() as session:
        client = Client(url, Pipeline(AioHttpTransport(session), [ClientDeadline(), SystemHeaders()]))
        async with client.request(get("never")):
            pass


async def wait_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the caller hangs up


CAUSES = ["cancel_on_timeout", "outbound call", "overloaded"]


async def the_cause(cause: str, raw_server: StartRawServer) -> tuple[dict[str, Any], Callable[[], Awaitable[None]]]:
    """The factory options and the ``then()`` that make an error escape after output started."""
    if cause == "cancel_on_timeout":
        return {"cancel_on_timeout": True}, lambda: asyncio.sleep(10)
    if cause == "outbound call":
        silent = await raw_server(wait_forever)
        return {}, lambda: outbound_call(silent.base_url)

    async def shed() -> None:
        raise OverloadedError("shed mid-stream", retry_after=1)

    return {}, shed


@pytest.mark.looptime
@pytest.mark.parametrize("cause", CAUSES)
async def test_defect_10_an_error_after_a_stream_started_closes_the_connection_and_is_recorded_as_aborted(
    observers: Observers, raw_server: StartRawServer, cause: str
) -> None:
    options, then = await the_cause(cause, raw_server)

    def routes(app: web.Application) -> None:
        app.router.add_get("/events", stream_and(then))

    async with serve(observers.factory(**options), routes) as client:
        # What a real aiohttp client gets: the stream's 200 and first event, then the end of a
        # connection closed mid-body; never a 408 or 503 status line parsed as a chunk size.
        async with client.get("/events", headers={"X-Request-Timeout": "1"}) as response:
            assert response.status == 200
            assert await response.content.readline() == b"data: first\n"
            with pytest.raises(aiohttp.ClientPayloadError) as error:
                await response.read()
        assert "Not enough data to satisfy transfer length header" in str(error.value)
        assert "Invalid character in chunk size" not in str(error.value)
        # Byte for byte on a socket of our own: the stream, then end of file, nothing after it.
        port = client.port
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\nX-Request-Timeout: 1\r\n\r\n")
            received = await asyncio.wait_for(reader.read(), timeout=30)  # returns at end of file
        finally:
            writer.close()
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Transfer-Encoding: chunked" in head
        assert body == b"d\r\ndata: first\n\n\r\n"  # one chunk, then the connection closed

    error_type = "OverloadedError" if cause == "overloaded" else "DeadlineExceededError"
    assert observers.samples(DURATION) == {("/events", "aborted"): 2}  # never a 408 or 503
    assert observers.samples("aio_pipeline_server_rejected_total") == {}
    assert observers.in_flight() == {0}
    assert observers.access_log() == [("/events", None, "warning", error_type, None, True)] * 2
    assert observers.otel_points() == [("/events", "-", error_type, 2)]


@pytest.mark.looptime
@pytest.mark.parametrize("cause", CAUSES)
async def test_defect_10_an_error_after_a_websocket_upgrade_closes_it_without_a_second_response(
    observers: Observers, raw_server: StartRawServer, cause: str
) -> None:
    options, then = await the_cause(cause, raw_server)

    def routes(app: web.Application) -> None:
        app.router.add_get("/ws", websocket_and(then))

    async with (
        serve(observers.factory(**options), routes) as client,
        client.ws_connect("/ws", headers={"X-Request-Timeout": "1"}) as ws,
    ):
        first = await ws.receive()
        assert (first.type, first.data) == (WSMsgType.TEXT, "first")
        end = await ws.receive()
        # The connection is closed; before, an HTTP status line arrived as a broken frame.
        assert end.type is WSMsgType.CLOSED, end
        assert ws.closed

    error_type = "OverloadedError" if cause == "overloaded" else "DeadlineExceededError"
    assert observers.samples(DURATION) == {("/ws", "aborted"): 1}
    assert observers.samples("aio_pipeline_server_rejected_total") == {}
    assert observers.access_log() == [("/ws", None, "warning", error_type, None, True)]
    assert observers.otel_points() == [("/ws", "-", error_type, 1)]


@pytest.mark.looptime
async def test_a_stream_that_ends_normally_is_recorded_with_its_own_status(observers: Observers) -> None:
    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=202)
        await response.prepare(request)
        await response.write(b"partial ")
        await asyncio.sleep(0.5)
        await response.write(b"and done")
        return response

    def routes(app: web.Application) -> None:
        app.router.add_get("/stream", stream)

    async with serve(observers.factory(), routes) as client, client.get("/stream") as response:
        assert (response.status, await response.read()) == (202, b"partial and done")

    assert observers.samples(DURATION) == {("/stream", "202"): 1}
    assert observers.access_log() == [("/stream", 202, "info", None, None, None)]
