"""``PrometheusMetricsProvider``: labels, once-per-call recording, per-registry metrics, lazy import.

The middlewares are driven directly with scripted ``call_next`` functions; the server side with
a stand-in request (method, headers, aiohttp-like ``match_info``). End-to-end counts against a
real server are in ``tests/integration/test_observability_live.py``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from aio_pipeline import (
    BudgetExhausted,
    CircuitOpenError,
    Client,
    DeadlineExceededError,
    DeadlineRejectedError,
    DefaultCircuitBreaker,
    OverloadedError,
    Pipeline,
    Request,
    Response,
    RetryScheduled,
    Transport,
    TransportError,
    get,
)
from aio_pipeline.middlewares.prometheus import DEFAULT_BUCKETS, PROMETHEUS_METRICS_PROVIDER, PrometheusMetricsProvider
from aio_pipeline.middlewares.strategy import SingleAttempt
from aio_pipeline.observe import MAX_ROUTES

ENDPOINT = "http://127.0.0.1:8080/api/"
extras = pytest.mark.needs_extras


@pytest.fixture
def registry() -> Any:
    prometheus_client = pytest.importorskip("prometheus_client")
    return prometheus_client.CollectorRegistry()


def value(registry: Any, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)  # type: ignore[no-any-return]


def answer(status: int = 200, *, after: float = 0.0) -> Callable[[Request], Any]:
    async def call_next(request: Request) -> Response:
        await asyncio.sleep(after)
        return Response(status)

    return call_next


def fail(error: BaseException) -> Callable[[Request], Any]:
    async def call_next(request: Request) -> Response:
        raise error

    return call_next


def call_labels(status: str, route: str = "users/{id}") -> dict[str, str]:
    return {"method": "GET", "endpoint": "http://127.0.0.1:8080", "route": route, "status": status}


# --- without prometheus-client --------------------------------------------------------------


def test_a_missing_prometheus_client_fails_on_first_use_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # makes the import fail, as if absent
    provider = PrometheusMetricsProvider()  # constructing needs nothing
    for method in (
        PROMETHEUS_METRICS_PROVIDER.client_call_middleware,
        provider.client_attempt_middleware,
        provider.client_event_hook,
        provider.circuit_breaker_hook,
        provider.server_middleware,
    ):
        with pytest.raises(ImportError, match=r"pip install 'aio-pipeline\[prometheus\]'"):
            method()


@pytest.mark.parametrize("buckets", [(), (1.0, 0.5), (0.1, 0.1), (0.0, 1.0), (1.0, float("inf")), ("1",)])
def test_bad_buckets_are_refused_naming_the_parameter(buckets: tuple[Any, ...]) -> None:
    with pytest.raises(ValueError, match="buckets"):
        PrometheusMetricsProvider(buckets=buckets)


def test_default_buckets_run_from_5_ms_to_20_s() -> None:
    assert DEFAULT_BUCKETS[0] == 0.005 and DEFAULT_BUCKETS[-1] == 20.0
    assert PrometheusMetricsProvider(buckets=[1, 2]).buckets == (1.0, 2.0)


# --- metrics per registry -------------------------------------------------------------------


@extras
def test_metrics_are_created_once_per_registry_and_shared(registry: Any) -> None:
    first, second = PrometheusMetricsProvider(registry=registry), PrometheusMetricsProvider(registry=registry)
    for provider in (first, second):  # a second registration would raise "Duplicated timeseries"
        provider.client_call_middleware()
        provider.server_middleware()
    assert first._metrics() is second._metrics()
    names = {metric.name for metric in registry.collect()}
    assert names == {
        "aio_pipeline_client_request_duration_seconds",
        "aio_pipeline_client_attempt_duration_seconds",
        "aio_pipeline_client_retry_budget_exhausted",
        "aio_pipeline_circuit_breaker_state",
        "aio_pipeline_circuit_breaker_transitions",
        "aio_pipeline_server_request_duration_seconds",
        "aio_pipeline_server_requests_in_flight",
        "aio_pipeline_server_rejected",
    }
    other = type(registry)()
    assert PrometheusMetricsProvider(registry=other)._metrics() is not first._metrics()


@extras
def test_providers_on_one_registry_must_agree_on_buckets(registry: Any) -> None:
    PrometheusMetricsProvider(registry=registry).client_call_middleware()
    with pytest.raises(ValueError, match="buckets"):
        PrometheusMetricsProvider(registry=registry, buckets=(1.0, 2.0)).client_call_middleware()


@extras
def test_the_default_provider_uses_the_default_registry() -> None:
    from prometheus_client import REGISTRY

    PROMETHEUS_METRICS_PROVIDER.client_call_middleware()
    assert PROMETHEUS_METRICS_PROVIDER._metrics() is PrometheusMetricsProvider(registry=REGISTRY)._metrics()


# --- the client side ------------------------------------------------------------------------


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_call_is_observed_once_with_its_status_and_duration(registry: Any) -> None:
    middleware = PrometheusMetricsProvider(registry=registry).client_call_middleware()
    request = get("users/{id}", path_parameters={"id": "42"}).replace(endpoint=ENDPOINT)
    response = await middleware(request, answer(503, after=0.25))
    assert response.status == 503
    assert value(registry, "aio_pipeline_client_request_duration_seconds_count", **call_labels("503")) == 1
    assert value(registry, "aio_pipeline_client_request_duration_seconds_sum", **call_labels("503")) == pytest.approx(
        0.25
    )
    bucket = {**call_labels("503"), "le": "0.25"}
    assert value(registry, "aio_pipeline_client_request_duration_seconds_bucket", **bucket) == 1


class MyTransportError(TransportError):
    """A user's subclass still counts as the library error it extends."""


@extras
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (DeadlineExceededError("late"), "DeadlineExceededError"),
        (CircuitOpenError("open", retry_after=1.0), "CircuitOpenError"),
        (MyTransportError("reset"), "TransportError"),
        (RuntimeError("a bug, with a message that must not become a label"), "error"),
    ],
)
async def test_a_failed_call_is_labelled_with_the_library_error_it_raised(
    registry: Any, error: Exception, status: str
) -> None:
    middleware = PrometheusMetricsProvider(registry=registry).client_call_middleware()
    with pytest.raises(type(error)):
        await middleware(get("users/{id}").replace(endpoint=ENDPOINT), fail(error))
    assert value(registry, "aio_pipeline_client_request_duration_seconds_count", **call_labels(status)) == 1


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_call_cancelled_by_its_caller_is_recorded_once(registry: Any) -> None:
    middleware = PrometheusMetricsProvider(registry=registry).client_call_middleware()
    task = asyncio.create_task(middleware(get("users/{id}").replace(endpoint=ENDPOINT), answer(after=10)))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    counts = [s for m in registry.collect() for s in m.samples if s.name.endswith("_count")]
    assert [(s.labels["status"], s.value) for s in counts] == [("cancelled", 1)]
    assert value(registry, "aio_pipeline_client_request_duration_seconds_sum", **call_labels("cancelled")) == 1


@extras
@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["first", "retry", "hedge"])
async def test_an_attempt_is_labelled_with_its_kind(registry: Any, kind: str) -> None:
    middleware = PrometheusMetricsProvider(registry=registry).client_attempt_middleware()
    await middleware(get("users/{id}").replace(endpoint=ENDPOINT, attempt=2, attempt_kind=kind), answer())
    labels = {**call_labels("200"), "kind": kind}
    assert value(registry, "aio_pipeline_client_attempt_duration_seconds_count", **labels) == 1


@extras
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("request_", "endpoint", "route"),
    [
        (
            get("users/{id}", query_parameters={"token": "x"}).replace(endpoint="https://u:pw@Host.example"),
            "https://host.example:443",
            "users/{id}",
        ),
        (get("http://u:pw@10.0.0.1:81/v1/things?token=x#frag"), "http://10.0.0.1:81", "/v1/things"),
        (get("http://[::1]/x"), "http://[::1]:80", "/x"),
        (get("relative/{id}?token=x"), "unknown", "relative/{id}"),
        (get("x").replace(endpoint="http://host:bad/"), "unknown", "x"),
    ],
    ids=["endpoint-with-userinfo", "absolute-url", "ipv6", "no-endpoint", "bad-port"],
)
async def test_endpoint_and_route_labels_never_carry_userinfo_query_or_values(
    registry: Any, request_: Request, endpoint: str, route: str
) -> None:
    middleware = PrometheusMetricsProvider(registry=registry).client_call_middleware()
    await middleware(request_, answer())
    labels = {"method": "GET", "endpoint": endpoint, "route": route, "status": "200"}
    assert value(registry, "aio_pipeline_client_request_duration_seconds_count", **labels) == 1


@extras
@pytest.mark.asyncio
async def test_a_non_standard_method_is_labelled_other(registry: Any) -> None:
    middleware = PrometheusMetricsProvider(registry=registry).client_call_middleware()
    await middleware(Request(method="PROPFIND", url="x", endpoint=ENDPOINT), answer())
    labels = {"method": "other", "endpoint": "http://127.0.0.1:8080", "route": "x", "status": "200"}
    assert value(registry, "aio_pipeline_client_request_duration_seconds_count", **labels) == 1


@extras
def test_the_event_hook_counts_budget_exhaustion_only(registry: Any) -> None:
    hook = PrometheusMetricsProvider(registry=registry).client_event_hook()
    request = get("users/{id}").replace(endpoint=ENDPOINT)
    hook(RetryScheduled(request, 2, 0.1))
    hook(BudgetExhausted(request, 2, "retry"))
    hook(BudgetExhausted(request, 3, "hedge"))
    hook(BudgetExhausted(request, 3, "hedge"))
    labels = {"method": "GET", "endpoint": "http://127.0.0.1:8080", "route": "users/{id}"}
    name = "aio_pipeline_client_retry_budget_exhausted_total"
    assert value(registry, name, **labels, kind="retry") == 1
    assert value(registry, name, **labels, kind="hedge") == 2


@extras
def test_breaker_changes_set_the_state_and_count_transitions_once_per_registry(registry: Any) -> None:
    now = [0.0]
    breaker: DefaultCircuitBreaker[str, Any] = DefaultCircuitBreaker(
        break_duration=5, failure_threshold=0.5, minimum_throughput=1, sampling_duration=10, clock=lambda: now[0]
    )
    # Two clients on one registry sharing the breaker: equal hooks, subscribed once.
    breaker.subscribe(PrometheusMetricsProvider(registry=registry).circuit_breaker_hook())
    breaker.subscribe(PrometheusMetricsProvider(registry=registry).circuit_breaker_hook())
    key = "http://a:80"
    state, transitions = "aio_pipeline_circuit_breaker_state", "aio_pipeline_circuit_breaker_transitions_total"
    breaker.acquire(key).failure()
    assert (value(registry, state, endpoint=key), value(registry, transitions, endpoint=key)) == (2, 1)
    now[0] = 5.0
    assert breaker.state[key] == "half_open"
    assert (value(registry, state, endpoint=key), value(registry, transitions, endpoint=key)) == (1, 2)
    breaker.acquire(key).success()
    assert (value(registry, state, endpoint=key), value(registry, transitions, endpoint=key)) == (0, 3)


# --- the server side ------------------------------------------------------------------------


def inbound(path_template: str | None = "/users/{id}", method: str = "GET", **headers: str) -> SimpleNamespace:
    """What the server middleware reads of an aiohttp request: method, headers, match_info."""
    resource = None if path_template is None else SimpleNamespace(canonical=path_template)
    return SimpleNamespace(
        method=method,
        headers={name.replace("_", "-"): v for name, v in headers.items()},
        match_info=SimpleNamespace(route=SimpleNamespace(resource=resource)),
    )


def server_labels(status: str, route: str = "/users/{id}", client: str = "unknown") -> dict[str, str]:
    return {"method": "GET", "route": route, "status": status, "client": client}


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_server_middleware_times_requests_and_counts_those_in_flight(registry: Any) -> None:
    middleware = PrometheusMetricsProvider(registry=registry).server_middleware()
    request = inbound(X_Service_Name="checkout")
    in_flight = {"method": "GET", "route": "/users/{id}"}

    async def handler(request: Any) -> Any:
        assert value(registry, "aio_pipeline_server_requests_in_flight", **in_flight) == 1
        await asyncio.sleep(0.5)
        return SimpleNamespace(status=201)

    assert (await middleware(request, handler)).status == 201
    labels = server_labels("201", client="checkout")
    assert value(registry, "aio_pipeline_server_request_duration_seconds_count", **labels) == 1
    assert value(registry, "aio_pipeline_server_request_duration_seconds_sum", **labels) == pytest.approx(0.5)
    assert value(registry, "aio_pipeline_server_requests_in_flight", **in_flight) == 0


@extras
@pytest.mark.asyncio
async def test_server_rejections_are_counted_by_reason_with_their_status(registry: Any) -> None:
    middleware = PrometheusMetricsProvider(registry=registry).server_middleware()
    refused, shed, timed_out, spent_outbound = inbound(), inbound(), inbound(), inbound()
    with pytest.raises(DeadlineRejectedError):  # ServerDeadline's refusal: the handler never ran
        await middleware(refused, fail(DeadlineRejectedError("expired", request=refused)))
    with pytest.raises(OverloadedError):
        await middleware(shed, fail(OverloadedError("busy", request=shed, retry_after=1)))
    with pytest.raises(DeadlineExceededError):  # a handler cancelled at its deadline: it ran
        await middleware(timed_out, fail(DeadlineExceededError("cancelled", request=timed_out)))
    with pytest.raises(DeadlineExceededError):  # an outbound call ran out: answered 408, not a refusal
        await middleware(spent_outbound, fail(DeadlineExceededError("late", request=get("x"))))
    rejected = "aio_pipeline_server_rejected_total"
    common = {"method": "GET", "route": "/users/{id}", "client": "unknown"}
    assert value(registry, rejected, **common, reason="deadline") == 1
    assert value(registry, rejected, **common, reason="overloaded") == 1
    count = "aio_pipeline_server_request_duration_seconds_count"
    assert value(registry, count, **server_labels("408")) == 3
    assert value(registry, count, **server_labels("503")) == 1


@extras
@pytest.mark.asyncio
async def test_unmatched_routes_http_exceptions_and_crashes_get_bounded_labels(registry: Any) -> None:
    from aiohttp import web

    middleware = PrometheusMetricsProvider(registry=registry).server_middleware()
    with pytest.raises(web.HTTPNotFound):
        await middleware(inbound(None), fail(web.HTTPNotFound()))
    with pytest.raises(RuntimeError):
        await middleware(inbound(), fail(RuntimeError("boom")))
    count = "aio_pipeline_server_request_duration_seconds_count"
    assert value(registry, count, **server_labels("404", route="unmatched")) == 1
    assert value(registry, count, **server_labels("500")) == 1


@extras
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("headers", "client"),
    [
        ({}, "unknown"),
        ({"X-Service-Name": "  "}, "unknown"),
        ({"X-Service-Name": " billing-v2.eu_1 "}, "billing-v2.eu_1"),
        ({"X-Service-Name": "x" * 64}, "x" * 64),
        ({"X-Service-Name": "x" * 65}, "invalid"),
        ({"X-Service-Name": "a b"}, "invalid"),
        ({"X-Service-Name": "a/b"}, "invalid"),
        ({"X-Service-Name": "café"}, "invalid"),
    ],
)
async def test_the_client_label_is_short_and_plain_or_a_placeholder(
    registry: Any, headers: dict[str, str], client: str
) -> None:
    middleware = PrometheusMetricsProvider(registry=registry).server_middleware()
    request = inbound()
    request.headers = headers
    await middleware(request, answer())
    count = "aio_pipeline_server_request_duration_seconds_count"
    assert value(registry, count, **server_labels("200", client=client)) == 1


@extras
@pytest.mark.asyncio
async def test_the_client_header_name_is_configurable(registry: Any) -> None:
    middleware = PrometheusMetricsProvider(registry=registry, client_header_name="X-Caller").server_middleware()
    await middleware(inbound(X_Caller="orders", X_Service_Name="ignored"), answer())
    count = "aio_pipeline_server_request_duration_seconds_count"
    assert value(registry, count, **server_labels("200", client="orders")) == 1


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_under_the_adapters_exchange_the_status_sent_is_recorded_when_it_is_final(registry: Any) -> None:
    from aio_pipeline.observe import CURRENT_EXCHANGE, Exchange

    middleware = PrometheusMetricsProvider(registry=registry).server_middleware()
    request = inbound()
    exchange = Exchange(request)  # what the aiohttp adapter opens for each request
    token = CURRENT_EXCHANGE.set(exchange)
    try:
        response = await middleware(request, answer(200, after=0.25))  # e.g. a FileResponse, unprepared
    finally:
        CURRENT_EXCHANGE.reset(token)
    assert response.status == 200
    count = "aio_pipeline_server_request_duration_seconds_count"
    assert value(registry, count, **server_labels("200")) is None  # not final yet: nothing recorded
    assert value(registry, "aio_pipeline_server_requests_in_flight", method="GET", route="/users/{id}") == 0
    await asyncio.sleep(0.25)
    exchange.sent(404)  # the adapter: prepared with 404
    assert value(registry, count, **server_labels("404")) == 1
    assert value(registry, "aio_pipeline_server_request_duration_seconds_sum", **server_labels("404")) == 0.5
    assert value(registry, count, **server_labels("200")) is None


# --- defect 9: bounded route labels ------------------------------------------------------------


class Immediate(Transport):
    """Answers 200 at once: the label logic is under test, not the network."""

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        return Response(200)


@extras
@pytest.mark.asyncio
async def test_defect_09_ten_thousand_distinct_absolute_urls_make_a_bounded_set_of_route_labels(registry: Any) -> None:
    provider = PrometheusMetricsProvider(registry=registry)
    pipeline = Pipeline(
        Immediate(), [provider.client_call_middleware(), SingleAttempt(), provider.client_attempt_middleware()]
    )
    client = Client(ENDPOINT, pipeline)
    for number in range(10_000):
        async with client.request(get(f"http://127.0.0.1:8080/api/users/{number}")) as response:
            assert response.status == 200
    routes = {
        sample.labels["route"]
        for metric in registry.collect()
        if metric.name == "aio_pipeline_client_request_duration_seconds"
        for sample in metric.samples
        if sample.name.endswith("_count")
    }
    # The first 200 distinct routes as they came, then one fixed value for every other one.
    assert routes == {f"/api/users/{number}" for number in range(MAX_ROUTES)} | {"other"}
    labels = {"method": "GET", "endpoint": "http://127.0.0.1:8080", "status": "200"}
    assert value(registry, "aio_pipeline_client_request_duration_seconds_count", **labels, route="other") == 9_800
    attempts = value(
        registry, "aio_pipeline_client_attempt_duration_seconds_count", **labels, route="other", kind="first"
    )
    assert attempts == 9_800


@extras
@pytest.mark.asyncio
async def test_defect_09_f_string_urls_and_the_cap_is_per_client_and_configurable(registry: Any) -> None:
    provider = PrometheusMetricsProvider(registry=registry, max_routes=3)
    first = Client(ENDPOINT, Pipeline(Immediate(), [provider.client_call_middleware()]))
    second = Client(ENDPOINT, Pipeline(Immediate(), [provider.client_call_middleware()]))
    for number in range(5):
        async with first.request(get(f"users/{number}")):
            pass
    async with second.request(get("users/{id}", path_parameters={"id": "9"})):
        pass
    count = "aio_pipeline_client_request_duration_seconds_count"
    assert [value(registry, count, **call_labels("200", route=f"users/{n}")) for n in range(5)] == [1, 1, 1, None, None]
    assert value(registry, count, **call_labels("200", route="other")) == 2
    assert value(registry, count, **call_labels("200", route="users/{id}")) == 1  # the other client's own set


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "10"])
def test_max_routes_must_be_a_positive_int(bad: Any) -> None:
    with pytest.raises(ValueError, match="max_routes"):
        PrometheusMetricsProvider(max_routes=bad)
