"""``OpenTelemetryMetricsProvider`` through the SDK's ``InMemoryMetricReader``: a real aiohttp
server on 127.0.0.1, a client pipeline assembled by hand, semantic-convention attributes."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import test_utils, web

from aio_pipeline import (
    AioHttpTransport,
    BudgetExhausted,
    CircuitState,
    CircuitStateChanged,
    Client,
    Pipeline,
    Request,
    Response,
    Transport,
    aiohttp_middleware_factory,
    constant_delays,
    get,
)
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.otel import OpenTelemetryMetricsProvider
from aio_pipeline.middlewares.retry import SequentialStrategy
from aio_pipeline.middlewares.strategy import PerCallStrategy
from aio_pipeline.middlewares.wire import SystemHeaders
from aio_pipeline.observe import MAX_ROUTES

HOST = "127.0.0.1"
extras = pytest.mark.needs_extras


def test_a_missing_opentelemetry_fails_on_first_use_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    provider = OpenTelemetryMetricsProvider()
    for method in (
        provider.client_call_middleware,
        provider.client_attempt_middleware,
        provider.client_event_hook,
        provider.circuit_breaker_hook,
        provider.server_middleware,
    ):
        with pytest.raises(ImportError, match=r"pip install 'aio-pipeline\[otel\]'"):
            method()


@pytest.fixture
def otel() -> tuple[OpenTelemetryMetricsProvider, Any]:
    """A provider over its own SDK meter provider, and the in-memory reader that sees it."""
    sdk = pytest.importorskip("opentelemetry.sdk.metrics")
    export = pytest.importorskip("opentelemetry.sdk.metrics.export")
    reader = export.InMemoryMetricReader()
    return OpenTelemetryMetricsProvider(meter_provider=sdk.MeterProvider(metric_readers=[reader])), reader


def points(reader: Any, name: str) -> list[tuple[dict[str, Any], Any]]:
    """``(attributes, data point)`` of every point of the metric called ``name``."""
    found = []
    for resource in reader.get_metrics_data().resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend((dict(point.attributes), point) for point in metric.data.data_points)
    return found


async def flaky(request: web.Request) -> web.Response:
    hits = request.app[HITS]
    hits.append(request.path)
    return web.Response(status=503 if len(hits) == 1 else 200)


async def user(request: web.Request) -> web.Response:
    return web.Response(text="ok")


HITS = web.AppKey("hits", list[str])


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_client_and_server_durations_follow_the_http_semantic_conventions(
    otel: tuple[OpenTelemetryMetricsProvider, Any], session: aiohttp.ClientSession
) -> None:
    provider, reader = otel
    app = web.Application(middlewares=[aiohttp_middleware_factory(metrics_provider=provider)])
    app[HITS] = []
    app.router.add_get("/users/{id}", user)
    app.router.add_get("/flaky", flaky)
    server = test_utils.TestServer(app, host=HOST, port=0)
    await server.start_server()
    port = server.port
    assert port is not None
    pipeline = Pipeline(
        AioHttpTransport(session),
        [
            provider.client_call_middleware(),
            ClientDeadline(),
            PerCallStrategy(),
            provider.client_attempt_middleware(),
            SystemHeaders(),
        ],
    )
    client = Client(f"http://{HOST}:{port}/", pipeline)
    retry = SequentialStrategy(attempts_count=2, delays_provider=constant_delays(delay=0.1))
    try:
        async with client.request(get("users/{id}", path_parameters={"id": "1"}, query_parameters={"q": "x"})) as r:
            assert r.status == 200
        async with client.request(get("flaky"), strategy=retry) as response:
            assert response.status == 200
        async with session.get(f"http://{HOST}:{port}/users/2", headers={"X-Request-Timeout": "0"}) as response:
            assert response.status == 408
        async with session.get(f"http://{HOST}:{port}/nowhere") as response:
            assert response.status == 404
    finally:
        await server.close()

    common = {"http.request.method": "GET", "server.address": HOST, "server.port": port, "url.scheme": "http"}
    attempts = points(reader, "http.client.request.duration")  # one per physical request, as semconv has it
    assert sorted((a["url.template"], a["aio_pipeline.attempt.kind"], p.count) for a, p in attempts) == [
        ("flaky", "first", 1),
        ("flaky", "retry", 1),
        ("users/{id}", "first", 1),
    ]
    first_flaky = next(
        a for a, _ in attempts if a["aio_pipeline.attempt.kind"] == "first" and a["url.template"] == "flaky"
    )
    assert first_flaky == {
        **common,
        "url.template": "flaky",
        "aio_pipeline.attempt.kind": "first",
        "http.response.status_code": 503,
        "error.type": "503",
    }
    calls = {a["url.template"]: (a, p) for a, p in points(reader, "aio_pipeline.client.call.duration")}
    assert calls["flaky"][0] == {**common, "url.template": "flaky", "http.response.status_code": 200}
    assert calls["flaky"][1].count == 1 and calls["flaky"][1].sum == pytest.approx(0.1, abs=0.01)

    served = sorted(
        (a.get("http.route", "-"), a["http.response.status_code"], a.get("error.type", "-"), p.count)
        for a, p in points(reader, "http.server.request.duration")
    )
    assert served == [
        ("-", 404, "-", 1),  # no route matched: no http.route, so no series per scanned path
        ("/flaky", 200, "-", 1),
        ("/flaky", 503, "503", 1),
        ("/users/{id}", 200, "-", 1),
        ("/users/{id}", 408, "-", 1),
    ]
    rejected = points(reader, "aio_pipeline.server.rejected")
    assert [(a, p.value) for a, p in rejected] == [
        ({"http.request.method": "GET", "http.route": "/users/{id}", "aio_pipeline.reason": "deadline"}, 1)
    ]
    assert {p.value for _, p in points(reader, "http.server.active_requests")} == {0}


@extras
def test_budget_and_breaker_events_become_counters_and_a_gauge(otel: tuple[OpenTelemetryMetricsProvider, Any]) -> None:
    provider, reader = otel
    request = get("users/{id}").replace(endpoint="https://user:pw@api.example/")
    provider.client_event_hook()(BudgetExhausted(request, 2, "retry"))
    hook = provider.circuit_breaker_hook()
    key = "https://api.example:443"
    hook(CircuitStateChanged(key, CircuitState.CLOSED, CircuitState.OPEN, 1.0, "failure_ratio"))
    hook(CircuitStateChanged(key, CircuitState.OPEN, CircuitState.HALF_OPEN, 2.0, "break_elapsed"))
    [(budget, exhausted)] = points(reader, "aio_pipeline.client.retry_budget.exhausted")
    assert budget == {
        "http.request.method": "GET",
        "server.address": "api.example",
        "server.port": 443,
        "url.scheme": "https",
        "url.template": "users/{id}",
        "aio_pipeline.attempt.kind": "retry",
    }
    assert exhausted.value == 1
    [(attributes, state)] = points(reader, "aio_pipeline.circuit_breaker.state")
    assert attributes == {"aio_pipeline.circuit_breaker.key": key} and state.value == 1
    assert [p.value for _, p in points(reader, "aio_pipeline.circuit_breaker.transitions")] == [2]


class Immediate(Transport):
    """Answers 200 at once: the attribute logic is under test, not the network."""

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        return Response(200)


@extras
@pytest.mark.asyncio
async def test_defect_09_distinct_absolute_urls_make_a_bounded_set_of_url_templates(
    otel: tuple[OpenTelemetryMetricsProvider, Any],
) -> None:
    provider, reader = otel
    client = Client("http://127.0.0.1:8080/", Pipeline(Immediate(), [provider.client_call_middleware()]))
    for number in range(MAX_ROUTES + 300):
        async with client.request(get(f"http://127.0.0.1:8080/orders/{number}")):
            pass
    counts = {a["url.template"]: p.count for a, p in points(reader, "aio_pipeline.client.call.duration")}
    assert set(counts) == {f"/orders/{number}" for number in range(MAX_ROUTES)} | {"_OTHER"}
    assert counts["_OTHER"] == 300
