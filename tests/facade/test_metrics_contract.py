"""The facade's metrics contract with the default registry: PROMETHEUS_METRICS_PROVIDER given to
the transport (client side) and to aiohttp_middleware_factory (server side). Counts are read as
deltas, since the default registry is shared by the whole test session."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import test_utils, web

import aio_pipeline as aio_request

pytestmark = [pytest.mark.asyncio, pytest.mark.needs_extras]


def sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_transport_and_server_metrics_on_the_default_registry() -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(
        middlewares=[aio_request.aiohttp_middleware_factory(metrics_provider=aio_request.PROMETHEUS_METRICS_PROVIDER)]
    )
    app.router.add_get("/thing/{id}", handler)
    async with test_utils.TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as client_session:
        endpoint = f"http://127.0.0.1:{server.port}"
        call = {"endpoint": endpoint, "method": "GET", "route": "thing/{id}", "status": "200"}
        served = {"client": "unknown", "method": "GET", "route": "/thing/{id}", "status": "200"}
        calls_before = sample("aio_pipeline_client_request_duration_seconds_count", **call)
        served_before = sample("aio_pipeline_server_request_duration_seconds_count", **served)
        for _ in range(2):  # two clients on one registry: no "Duplicated timeseries"
            client = aio_request.setup(
                transport=aio_request.AioHttpTransport(
                    client_session, metrics_provider=aio_request.PROMETHEUS_METRICS_PROVIDER
                ),
                endpoint=endpoint + "/",
            )
            async with client.request(
                aio_request.get("thing/{id}", path_parameters={"id": 7}),
                deadline=aio_request.Deadline.from_timeout(5),
            ) as response:
                assert response.status == 200
    assert sample("aio_pipeline_client_request_duration_seconds_count", **call) - calls_before == 2
    assert sample("aio_pipeline_server_request_duration_seconds_count", **served) - served_before == 2


async def test_without_a_provider_nothing_is_recorded(session: aiohttp.ClientSession) -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    provider = aio_request.PrometheusMetricsProvider(registry=registry)
    assert list(registry.collect()) == []  # created lazily: nothing registered before first use
    client = aio_request.setup(
        transport=aio_request.AioHttpTransport(session), endpoint="http://127.0.0.1:1/", metrics_provider=provider
    )
    async with client.request(aio_request.get("x"), strategy=aio_request.single_attempt_strategy()) as response:
        assert response.status == 489  # nothing listens on port 1
    value = registry.get_sample_value(
        "aio_pipeline_client_request_duration_seconds_count",
        {"endpoint": "http://127.0.0.1:1", "method": "GET", "route": "x", "status": "ConnectError"},
    )
    assert value == 1
