"""Every middleware we ship passes the conformance check: the client and server ones of
``middlewares/``, those the metrics, tracing and log backends hand out, the facade's own, and
``examples/custom_pipeline.py``'s company middleware. A middleware added to ``middlewares/``
without a place here fails ``test_every_middleware_class_we_ship_is_checked``.

Logs go to structlog's capture, metrics to a private Prometheus registry and an OpenTelemetry
SDK reader, spans to an SDK tracer provider: the middlewares run as a user's would.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import aio_pipeline as ap
import aio_pipeline.middlewares
from aio_pipeline import PipelineError
from aio_pipeline.facade._familiar import StaticEndpointProvider
from aio_pipeline.facade._modules import BypassModule, LowTimeoutModule, as_middleware
from aio_pipeline.facade._setup import _Enrich, _ResolveEndpoint
from aio_pipeline.facade._synthetic import SyntheticResponses
from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware
from aio_pipeline.middlewares.deadline import ClientDeadline, ServerDeadline
from aio_pipeline.middlewares.hedging import ParallelStrategy
from aio_pipeline.middlewares.priority import ClientPriority, ServerPriority
from aio_pipeline.middlewares.retry import RetryUntilDeadlineExpiredStrategy, SequentialStrategy
from aio_pipeline.middlewares.shedding import LoadShedding
from aio_pipeline.middlewares.strategy import MethodBasedStrategy, PerCallStrategy, SingleAttempt
from aio_pipeline.middlewares.wire import SystemHeaders
from aio_pipeline.testing import check_middleware, check_server_middleware

ROOT = Path(__file__).resolve().parents[2]
Factory = Callable[[], Any]


def custom_pipeline_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("custom_pipeline_example", ROOT / "examples" / "custom_pipeline.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def breaker() -> ap.DefaultCircuitBreaker[str, Any]:
    return ap.DefaultCircuitBreaker[str, Any](
        break_duration=5.0, sampling_duration=10.0, minimum_throughput=5, failure_threshold=0.5
    )


def prometheus() -> Any:
    from prometheus_client import CollectorRegistry

    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    return PrometheusMetricsProvider(registry=CollectorRegistry())


def opentelemetry() -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from aio_pipeline.middlewares.otel import OpenTelemetryMetricsProvider

    return OpenTelemetryMetricsProvider(meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]))


def tracer_provider() -> Any:
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider()


def client_log() -> Any:
    from aio_pipeline.middlewares.log import ClientLog

    return ClientLog(every_call=True, log_attempts=True)


def server_log() -> Any:
    from aio_pipeline.middlewares.log import ServerLog

    return ServerLog(log_headers=True)


def client_tracing() -> Any:
    from aio_pipeline.middlewares.tracing import ClientTracing

    return ClientTracing(tracer_provider=tracer_provider())


def server_tracing() -> Any:
    from aio_pipeline.middlewares.tracing import ServerTracing

    return ServerTracing(tracer_provider=tracer_provider())


def enrich(request: ap.Request, is_first_attempt: bool) -> ap.Request:
    return request.update_headers({"X-First": str(is_first_attempt)})


extras = pytest.mark.needs_extras

#: (id, factory, what it means to map): every client middleware we ship.
CLIENT: list[Any] = [
    pytest.param(ClientDeadline, {}, id="ClientDeadline"),
    pytest.param(ClientPriority, {}, id="ClientPriority"),
    pytest.param(SystemHeaders, {}, id="SystemHeaders"),
    pytest.param(SingleAttempt, {}, id="SingleAttempt"),
    pytest.param(PerCallStrategy, {}, id="PerCallStrategy"),
    pytest.param(lambda: MethodBasedStrategy({"GET": SequentialStrategy()}), {}, id="MethodBasedStrategy"),
    pytest.param(SequentialStrategy, {}, id="SequentialStrategy"),
    pytest.param(ParallelStrategy, {}, id="ParallelStrategy"),
    pytest.param(RetryUntilDeadlineExpiredStrategy, {}, id="RetryUntilDeadlineExpiredStrategy"),
    pytest.param(
        lambda: RetryUntilDeadlineExpiredStrategy(base_strategy=SequentialStrategy(attempts_count=2)),
        {},
        id="RetryUntilDeadlineExpiredStrategy-of-a-sequence",
    ),
    pytest.param(lambda: CircuitBreakerMiddleware(breaker()), {}, id="CircuitBreakerMiddleware"),
    pytest.param(client_log, {}, id="ClientLog", marks=extras),
    pytest.param(lambda: prometheus().client_call_middleware(), {}, id="prometheus-call", marks=extras),
    pytest.param(lambda: prometheus().client_attempt_middleware(), {}, id="prometheus-attempt", marks=extras),
    pytest.param(lambda: opentelemetry().client_call_middleware(), {}, id="otel-call", marks=extras),
    pytest.param(lambda: opentelemetry().client_attempt_middleware(), {}, id="otel-attempt", marks=extras),
    pytest.param(client_tracing, {}, id="ClientTracing", marks=extras),
    pytest.param(lambda: client_tracing().attempts(), {}, id="ClientTracing-attempts", marks=extras),
    # The facade's outermost step answers the library's failures with aio-request's synthetic
    # responses (408, 489, ...): a mapping it means, so it says so.
    pytest.param(SyntheticResponses, {"maps_errors": [PipelineError]}, id="facade-SyntheticResponses"),
    pytest.param(
        lambda: _ResolveEndpoint(StaticEndpointProvider("http://127.0.0.1:1/")), {}, id="facade-endpoint-provider"
    ),
    pytest.param(lambda: _Enrich(enrich, takes_flag=True), {}, id="facade-request-enricher"),
    pytest.param(lambda: as_middleware(BypassModule()), {}, id="facade-module-BypassModule"),
    pytest.param(lambda: as_middleware(LowTimeoutModule(0.005)), {}, id="facade-module-LowTimeoutModule"),
    pytest.param(lambda: custom_pipeline_example().add_auth_token, {}, id="example-add_auth_token"),
    pytest.param(lambda: custom_pipeline_example().forward_tenant, {}, id="example-forward_tenant"),
]

SERVER: list[Any] = [
    pytest.param(ServerDeadline, id="ServerDeadline"),
    pytest.param(lambda: ServerDeadline(cancel_on_timeout=True), id="ServerDeadline-cancelling"),
    pytest.param(ServerPriority, id="ServerPriority"),
    pytest.param(lambda: LoadShedding(max_concurrency=10), id="LoadShedding"),
    pytest.param(server_log, id="ServerLog", marks=extras),
    pytest.param(lambda: prometheus().server_middleware(), id="prometheus-server", marks=extras),
    pytest.param(lambda: opentelemetry().server_middleware(), id="otel-server", marks=extras),
    pytest.param(server_tracing, id="ServerTracing", marks=extras),
    pytest.param(lambda: custom_pipeline_example().tenant_from_header, id="example-tenant_from_header"),
]


@pytest.fixture(autouse=True)
def logs_captured() -> Iterator[list[Any]]:
    """structlog's capture, when structlog is there: the log middlewares log into it."""
    try:
        from structlog.testing import capture_logs
    except ImportError:
        yield []
        return
    with capture_logs() as logs:
        yield logs


@pytest.mark.parametrize(("factory", "options"), CLIENT)
def test_every_client_middleware_we_ship_keeps_the_rules(factory: Factory, options: dict[str, Any]) -> None:
    check_middleware(factory(), **options)


@pytest.mark.parametrize("factory", SERVER)
def test_every_server_middleware_we_ship_keeps_the_rules(factory: Factory) -> None:
    check_server_middleware(factory())


@extras
def test_the_log_middlewares_really_ran_in_the_check(logs_captured: list[dict[str, Any]]) -> None:
    """A check that passes because nothing ran would prove nothing: the logs show every call."""
    check_middleware(client_log())
    check_server_middleware(server_log())

    seen = Counter((log["event"], log.get("status"), log.get("error")) for log in logs_captured)
    client, server = "aio_pipeline.client.call", "aio_pipeline.server.request"
    assert seen == {
        # plain 1, retry 3, concurrent 3, the winning hedge, holding 1, the deadline's second attempt
        (client, 200, None): 10,
        (client, None, "cancelled"): 2,  # the losing hedge, and the call cancelled at 0.5 s
        (client, None, "DeadlineExceededError"): 1,  # the deadline's first attempt
        (client, None, "ConnectError"): 1,
        (client, None, "RuntimeError"): 1,
        (server, 200, None): 7,  # plain 1, again 3, concurrent 3
        (server, None, "cancelled"): 2,  # a client gone away, and the deadline (inside ServerDeadline)
        (server, 500, "ConnectError"): 1,
        (server, 503, "HTTPServiceUnavailable"): 1,
        (server, 500, "RuntimeError"): 1,
    }


def test_the_example_without_its_mapping_promise_would_fail() -> None:
    """The facade's mapping passes only because it is declared: the check does look."""
    with pytest.raises(AssertionError, match="keeps call_next's exceptions as they are"):
        check_middleware(SyntheticResponses())


def shipped_middleware_classes() -> set[str]:
    """Every public class of ``middlewares/`` called as ``(request, call_next)``."""
    found: set[str] = set()
    for info in pkgutil.iter_modules(aio_pipeline.middlewares.__path__):
        module = importlib.import_module(f"aio_pipeline.middlewares.{info.name}")
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if not inspect.isclass(value) or issubclass(value, BaseException):
                continue
            parameters = list(inspect.signature(value.__call__).parameters)
            if parameters[1:3] == ["request", "call_next"]:
                found.add(f"{info.name}.{name}")
    return found


@extras
def test_every_middleware_class_we_ship_is_checked() -> None:
    checked_client = {param.id.split("-")[0] for param in CLIENT}
    checked_server = {param.id.split("-")[0] for param in SERVER}
    checked = checked_client | checked_server

    assert {name.split(".")[1] for name in shipped_middleware_classes()} <= checked
