"""Observability end to end: a real aiohttp server on 127.0.0.1, a client pipeline assembled by
hand, a real ``prometheus_client.CollectorRegistry`` and structlog's ``capture_logs``.

The expected numbers come from the scenario as written in each test, not from the code. Server
latencies are virtual (looptime), so the hedge and the retry delay are exact.
"""

from __future__ import annotations

import asyncio
import random
import string
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import test_utils, web

from aio_pipeline import (
    AioHttpTransport,
    CircuitOpenError,
    Client,
    DefaultCircuitBreaker,
    Pipeline,
    RetryBudget,
    aiohttp_middleware_factory,
    constant_delays,
    get,
)
from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.hedging import ParallelStrategy
from aio_pipeline.middlewares.priority import ClientPriority
from aio_pipeline.middlewares.retry import SequentialStrategy
from aio_pipeline.middlewares.strategy import PerCallStrategy, SingleAttempt
from aio_pipeline.middlewares.wire import SystemHeaders

pytestmark = [pytest.mark.asyncio, pytest.mark.needs_extras]

HOST = "127.0.0.1"
CALLER = {"X-Service-Name": "checkout"}


@dataclass
class Backend:
    """``/users/{id}`` answers 200; ``/flaky`` 503 the first time, then 200; ``/slow-once``
    takes 1 s the first time, then answers at once; ``/broken`` always 500. ``idle`` is set when
    no handler runs; ``seen`` holds each request's raw query string and headers."""

    endpoint: str = ""
    hits: Counter[str] = field(default_factory=Counter)
    running: int = 0
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.idle.set()

    async def handle(self, request: web.Request) -> web.Response:
        name = request.path.strip("/").split("/")[0]
        self.hits[name] += 1
        self.seen.append((request.query_string, dict(request.headers)))
        self.running += 1
        self.idle.clear()
        try:
            if name == "slow-once" and self.hits[name] == 1:
                await asyncio.sleep(1.0)
            status = {"flaky": 503 if self.hits[name] == 1 else 200, "broken": 500}.get(name, 200)
            return web.Response(status=status, text=name)
        finally:
            self.running -= 1
            if not self.running:
                self.idle.set()


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def start(backend: Backend, middleware: Any) -> test_utils.TestServer:
    app = web.Application(middlewares=[middleware])
    for path in ("/users/{id}", "/flaky", "/slow-once", "/broken"):
        app.router.add_get(path, backend.handle)
    server = test_utils.TestServer(app, host=HOST, port=0)
    await server.start_server()
    backend.endpoint = str(server.make_url("")).rstrip("/")
    return server


def pipeline(session: aiohttp.ClientSession, provider: Any, breaker: Any, *, first: Sequence[Any] = ()) -> Pipeline:
    """The client stack of DESIGN.md, by hand, with ``first`` outermost (a call logger)."""
    return Pipeline(
        AioHttpTransport(session),
        [
            *first,
            provider.client_call_middleware(),
            ClientDeadline(timeout=5),
            ClientPriority(),
            PerCallStrategy(SingleAttempt()),
            provider.client_attempt_middleware(),
            CircuitBreakerMiddleware(breaker),
            SystemHeaders(),
        ],
    )


def breaker() -> DefaultCircuitBreaker[str, Any]:
    """Opens after 3 failures in a row (the ratio rule never applies: 100 samples needed)."""
    return DefaultCircuitBreaker(
        break_duration=10, failure_threshold=1.0, minimum_throughput=100, sampling_duration=10, consecutive_failures=3
    )


def samples(registry: Any, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name`` in ``registry``, by its sorted label pairs."""
    found = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def key(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


@pytest.mark.looptime
async def test_a_known_sequence_of_calls_gives_exact_sample_counts(session: aiohttp.ClientSession) -> None:
    from prometheus_client import CollectorRegistry

    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    registry = CollectorRegistry()
    # Two providers on one registry: they share the metric objects (no duplicate error).
    server_side, client_side = (
        PrometheusMetricsProvider(registry=registry),
        PrometheusMetricsProvider(registry=registry),
    )
    backend = Backend()
    server = await start(backend, aiohttp_middleware_factory(metrics_provider=server_side, timeout=5))
    circuit = breaker()
    circuit.subscribe(client_side.circuit_breaker_hook())
    hook = client_side.client_event_hook()
    client = Client(backend.endpoint, pipeline(session, client_side, circuit))
    try:

        async def call(route: str, strategy: Any = None, **parameters: str) -> int:
            request = get(route, headers=CALLER, path_parameters=parameters)
            async with client.request(request, strategy=strategy) as response:
                return response.status

        assert await call("users/{id}", id="1") == 200
        assert await call("users/{id}", id="2") == 200
        retry = SequentialStrategy(attempts_count=3, delays_provider=constant_delays(delay=0.1), event_hooks=[hook])
        assert await call("flaky", retry) == 200  # 503, then 200 on the retry
        hedge = ParallelStrategy(attempts_count=2, delays_provider=constant_delays(delay=0.2), event_hooks=[hook])
        assert await call("slow-once", hedge) == 200  # the hedge wins; the first attempt is cancelled
        spent = SequentialStrategy(attempts_count=3, budget=RetryBudget(ratio=0, min_per_second=0), event_hooks=[hook])
        assert await call("broken", spent) == 500  # the budget refuses the retry
        assert await call("broken") == 500
        assert await call("broken") == 500  # third failure in a row: the circuit opens
        with pytest.raises(CircuitOpenError):
            await call("broken")
        async with session.get(f"{backend.endpoint}/users/3", headers={"X-Request-Timeout": "0"}) as response:
            assert response.status == 408
        async with session.get(f"{backend.endpoint}/no/such/path") as response:
            assert response.status == 404
        await backend.idle.wait()  # the hedged-out handler, too
    finally:
        await server.close()

    endpoint = backend.endpoint
    assert backend.hits == {"users": 2, "flaky": 2, "slow-once": 2, "broken": 3}  # the open circuit sent nothing

    def client_key(route: str, status: str, **more: str) -> tuple[tuple[str, str], ...]:
        return key(method="GET", endpoint=endpoint, route=route, status=status, **more)

    assert samples(registry, "aio_pipeline_client_request_duration_seconds_count") == {
        client_key("users/{id}", "200"): 2,
        client_key("flaky", "200"): 1,
        client_key("slow-once", "200"): 1,
        client_key("broken", "500"): 3,
        client_key("broken", "CircuitOpenError"): 1,
    }
    assert samples(registry, "aio_pipeline_client_attempt_duration_seconds_count") == {
        client_key("users/{id}", "200", kind="first"): 2,
        client_key("flaky", "503", kind="first"): 1,
        client_key("flaky", "200", kind="retry"): 1,
        client_key("slow-once", "cancelled", kind="first"): 1,
        client_key("slow-once", "200", kind="hedge"): 1,
        client_key("broken", "500", kind="first"): 3,
        client_key("broken", "CircuitOpenError", kind="first"): 1,
    }
    # The flaky retry waited 0.1 s and the hedge started 0.2 s in: exact on the virtual clock.
    durations = samples(registry, "aio_pipeline_client_request_duration_seconds_sum")
    assert durations[client_key("slow-once", "200")] == pytest.approx(0.2, abs=0.01)
    assert durations[client_key("flaky", "200")] == pytest.approx(0.1, abs=0.01)
    assert samples(registry, "aio_pipeline_client_retry_budget_exhausted_total") == {
        key(method="GET", endpoint=endpoint, route="broken", kind="retry"): 1
    }
    assert samples(registry, "aio_pipeline_circuit_breaker_state") == {key(endpoint=endpoint): 2}
    assert samples(registry, "aio_pipeline_circuit_breaker_transitions_total") == {key(endpoint=endpoint): 1}

    def server_key(route: str, status: str, client: str = "checkout") -> tuple[tuple[str, str], ...]:
        return key(method="GET", route=route, status=status, client=client)

    assert samples(registry, "aio_pipeline_server_request_duration_seconds_count") == {
        server_key("/users/{id}", "200"): 2,
        server_key("/flaky", "503"): 1,
        server_key("/flaky", "200"): 1,
        server_key("/slow-once", "200"): 1,
        server_key("/slow-once", "cancelled"): 1,  # the hedged-out attempt: its client hung up
        server_key("/broken", "500"): 3,
        server_key("/users/{id}", "408", "unknown"): 1,
        server_key("unmatched", "404", "unknown"): 1,
    }
    assert samples(registry, "aio_pipeline_server_rejected_total") == {
        key(method="GET", route="/users/{id}", client="unknown", reason="deadline"): 1
    }
    assert set(samples(registry, "aio_pipeline_server_requests_in_flight").values()) == {0}


async def test_label_sets_stay_bounded_after_a_thousand_requests_to_random_paths(
    session: aiohttp.ClientSession,
) -> None:
    from prometheus_client import CollectorRegistry

    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    registry = CollectorRegistry()
    backend = Backend()
    server = await start(backend, aiohttp_middleware_factory(metrics_provider=PrometheusMetricsProvider(registry)))
    rng = random.Random(6)

    def noise(length: int) -> str:
        return "".join(rng.choices(string.ascii_letters + string.digits + "-._~", k=length))

    async def scan(index: int) -> None:
        path = "/".join(noise(rng.randint(1, 12)) for _ in range(rng.randint(1, 4)))
        # Callers that name themselves badly: too long, odd characters, or not at all.
        name = rng.choice([noise(65), f"{noise(5)} {noise(5)}", f"{noise(4)}/{noise(4)}", ""])
        headers = {"X-Service-Name": name} if name else {}
        method = ("GET", "POST", "DELETE")[index % 3]
        url = f"{backend.endpoint}/zz-{path}?q={noise(8)}"
        async with session.request(method, url, headers=headers) as response:
            assert response.status == 404

    try:
        for batch in range(0, 1000, 100):
            await asyncio.gather(*(scan(index) for index in range(batch, batch + 100)))
    finally:
        await server.close()

    counts = samples(registry, "aio_pipeline_server_request_duration_seconds_count")
    assert sum(counts.values()) == 1000
    assert set(counts) <= {
        key(method=method, route="unmatched", status="404", client=client)
        for method in ("GET", "POST", "DELETE")
        for client in ("unknown", "invalid")
    }
    every_label_set = {sample.labels.get("route") for metric in registry.collect() for sample in metric.samples}
    assert every_label_set <= {None, "unmatched"}


async def test_no_secret_reaches_a_log_line_or_a_metric_label(session: aiohttp.ClientSession) -> None:
    from prometheus_client import CollectorRegistry, generate_latest
    from structlog.testing import capture_logs

    from aio_pipeline.middlewares.log import ClientLog, ServerLog
    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    registry = CollectorRegistry()
    provider = PrometheusMetricsProvider(registry=registry)
    backend = Backend()
    server_stack = aiohttp_middleware_factory(
        metrics_provider=provider,
        outer_middlewares=[ServerLog(log_headers=True, deny_headers=["X-Api-Key"])],
        middlewares=[ServerLog(log_headers=True, deny_headers=["X-Api-Key"])],  # inside, too
    )
    server = await start(backend, server_stack)
    log = ClientLog(log_headers=True, deny_headers=["x-api-key"], every_call=True)
    circuit = breaker()
    circuit.subscribe(log.circuit_breaker_hook())
    stack = pipeline(session, provider, circuit, first=[log])
    # The second client's endpoint carries userinfo, which aiohttp sends as Basic authorization.
    userinfo = Client(backend.endpoint.replace("http://", "http://user:secret@"), stack)
    secrets = {"Authorization": "Bearer secret", "Cookie": "session=secret", "X-Api-Key": "secret"}
    try:
        with capture_logs() as logs:
            for client, headers in ((Client(backend.endpoint, stack), secrets), (userinfo, {})):
                request = get(
                    "users/{id}",
                    path_parameters={"id": "7"},
                    query_parameters={"token": "secret"},
                    headers={**headers, **CALLER},
                )
                async with client.request(request) as response:
                    assert response.status == 200
    finally:
        await server.close()

    assert [query for query, _ in backend.seen] == ["token=secret", "token=secret"]  # the secrets were sent
    assert backend.seen[0][1]["X-Api-Key"] == "secret" and backend.seen[1][1]["Authorization"].startswith("Basic ")
    events = Counter(entry["event"] for entry in logs)
    assert events == {"aio_pipeline.client.call": 2, "aio_pipeline.server.request": 4}
    assert "secret" not in repr(logs)
    assert b"secret" not in generate_latest(registry)
    calls = [entry for entry in logs if entry["event"] == "aio_pipeline.client.call"]
    assert calls[0]["headers"]["Authorization"] == calls[0]["headers"]["X-Api-Key"] == "[redacted]"
    assert {(call["endpoint"], call["route"]) for call in calls} == {(backend.endpoint, "users/{id}")}
    basic = [entry for entry in logs if entry["event"] == "aio_pipeline.server.request"][-1]
    assert basic["headers"]["Authorization"] == "[redacted]" and basic["path"] == "/users/7"


@pytest.mark.looptime
async def test_logs_tell_the_story_of_a_retried_call_and_an_opening_circuit(session: aiohttp.ClientSession) -> None:
    from prometheus_client import CollectorRegistry
    from structlog.testing import capture_logs

    from aio_pipeline.middlewares.log import ClientLog, ServerLog
    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    provider = PrometheusMetricsProvider(registry=CollectorRegistry())
    backend = Backend()
    server = await start(backend, aiohttp_middleware_factory(outer_middlewares=[ServerLog()], timeout=5))
    log = ClientLog(log_attempts=True)
    circuit = breaker()
    circuit.subscribe(log.circuit_breaker_hook())
    client = Client(backend.endpoint, pipeline(session, provider, circuit, first=[log]))
    retry = SequentialStrategy(
        attempts_count=3, delays_provider=constant_delays(delay=0.1), event_hooks=[log.client_event_hook()]
    )
    try:
        with capture_logs() as logs:
            async with client.request(get("flaky", headers=CALLER), strategy=retry) as response:
                assert response.status == 200
            for _ in range(3):
                async with client.request(get("broken", headers=CALLER)) as response:
                    assert response.status == 500
    finally:
        await server.close()

    client_events = [entry for entry in logs if entry["event"].startswith("aio_pipeline.c")]
    assert [entry["event"] for entry in client_events] == [
        "aio_pipeline.client.attempt",
        "aio_pipeline.client.retry_scheduled",
        "aio_pipeline.client.attempt",
        "aio_pipeline.client.call",
        "aio_pipeline.client.call",
        "aio_pipeline.client.call",
        "aio_pipeline.circuit_breaker.state_changed",
        "aio_pipeline.client.call",
    ]
    first, scheduled, second, call = client_events[:4]
    assert (first["attempt"], first["attempt_kind"], first["status"], first["log_level"]) == (1, "first", 503, "debug")
    assert (second["attempt"], second["attempt_kind"], second["status"]) == (2, "retry", 200)
    assert scheduled["next_attempt"] == 2 and scheduled["delay"] == pytest.approx(0.1)
    assert first["priority"] == "normal" and 4.99 <= first["deadline_remaining"] <= 5
    assert call["status"] == 200 and call["attempts"] == 2 and call["duration"] == pytest.approx(0.1, abs=0.01)
    assert call["method"] == "GET" and call["endpoint"] == backend.endpoint and call["route"] == "flaky"
    opened = client_events[6]
    assert (opened["endpoint"], opened["old"], opened["new"], opened["log_level"]) == (
        backend.endpoint,
        "closed",
        "open",
        "warning",
    )
    assert opened["reason"] == "consecutive_failures"

    access = [entry for entry in logs if entry["event"] == "aio_pipeline.server.request"]
    assert [(entry["route"], entry["status"], entry["client"]) for entry in access] == [
        ("/flaky", 503, "checkout"),
        ("/flaky", 200, "checkout"),
        ("/broken", 500, "checkout"),
        ("/broken", 500, "checkout"),
        ("/broken", 500, "checkout"),
    ]
    assert access[1]["path"] == "/flaky" and access[1]["priority"] == "normal"


async def test_the_factory_runs_outer_middlewares_outside_metrics_and_names_the_client_header(
    session: aiohttp.ClientSession,
) -> None:
    from prometheus_client import CollectorRegistry
    from structlog.testing import capture_logs

    from aio_pipeline.middlewares.log import ServerLog
    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    registry = CollectorRegistry()
    order: list[str] = []

    def recorder(name: str) -> Any:
        async def record(request: web.Request, call_next: Any) -> web.StreamResponse:
            order.append(name)
            return await call_next(request)

        return record

    stack = aiohttp_middleware_factory(
        metrics_provider=PrometheusMetricsProvider(registry=registry),
        outer_middlewares=[recorder("outer"), ServerLog()],
        middlewares=[recorder("inner")],
        client_header_name="X-Caller",
    )
    backend = Backend()
    server = await start(backend, stack)
    try:
        with capture_logs() as logs:
            for timeout in ("0", "5"):  # refused, then served
                headers = {"X-Caller": "orders", "X-Service-Name": "ignored", "X-Request-Timeout": timeout}
                async with session.get(f"{backend.endpoint}/users/1", headers=headers) as response:
                    assert response.status == (408 if timeout == "0" else 200)
    finally:
        await server.close()

    assert order == ["outer", "outer", "inner"]  # the refused request never got inside
    assert [(entry["status"], entry["client"], entry.get("rejected")) for entry in logs] == [
        (408, "orders", "deadline"),
        (200, "orders", None),
    ]
    counts = samples(registry, "aio_pipeline_server_request_duration_seconds_count")
    assert counts == {
        key(method="GET", route="/users/{id}", status="408", client="orders"): 1,
        key(method="GET", route="/users/{id}", status="200", client="orders"): 1,
    }
