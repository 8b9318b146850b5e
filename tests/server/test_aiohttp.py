"""The aiohttp adapter against real servers on 127.0.0.1: headers in, context for the handler,
our errors out as statuses, per-handler defaults, the cap and cancellation.

Time is virtual (looptime); a handler's ``calls`` counter proves whether it ran.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aio_pipeline import DeadlineExceededError, OverloadedError, Priority, aiohttp_middleware_factory
from aio_pipeline.middlewares.deadline import ServerDeadline
from aio_pipeline.propagation import get_context
from aio_pipeline.server.aiohttp import (
    aiohttp_handler_timeout,
    aiohttp_server_middleware,
    aiohttp_timeout,
)

HOST = "127.0.0.1"


@dataclass
class Seen:
    """What the handlers saw: how often they ran, and the context of the last run."""

    calls: int = 0
    timeout: float | None = None
    priority: Priority | None = None
    cancelled: int = 0
    log: list[str] = field(default_factory=list)

    def record(self) -> None:
        self.calls += 1
        context = get_context()
        self.timeout = None if context.deadline is None else context.deadline.timeout
        self.priority = context.priority


SEEN = web.AppKey("seen", Seen)


async def record(request: web.Request) -> web.Response:
    request.app[SEEN].record()
    return web.Response(text="ok")


async def slow(request: web.Request) -> web.Response:
    seen = request.app[SEEN]
    seen.record()
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        seen.cancelled += 1
        raise
    return web.Response(text="slow but done")


@aiohttp_timeout(seconds=60)
async def report(request: web.Request) -> web.Response:
    return await record(request)


class Thing(web.View):
    @aiohttp_timeout(seconds=45)
    async def get(self) -> web.Response:
        return await record(self.request)

    async def post(self) -> web.Response:
        return await record(self.request)


@aiohttp_timeout(seconds=50)
class Whole(web.View):
    async def get(self) -> web.Response:
        return await record(self.request)


async def spends_its_deadline(request: web.Request) -> web.Response:
    raise DeadlineExceededError("an outbound call ran out of the inherited deadline")


async def forbidden(request: web.Request) -> web.Response:
    raise web.HTTPForbidden()


def make_app(middleware: Any) -> web.Application:
    app = web.Application(middlewares=[middleware])
    app[SEEN] = Seen()
    app.router.add_get("/record", record)
    app.router.add_get("/slow", slow)
    app.router.add_get("/report", report)
    app.router.add_view("/thing", Thing)
    app.router.add_view("/whole", Whole)
    app.router.add_get("/spent", spends_its_deadline)
    app.router.add_get("/forbidden", forbidden)
    return app


@asynccontextmanager
async def serve(middleware: Any) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(make_app(middleware), host=HOST)) as client:
        yield client


def seen(client: TestClient[web.Request, web.Application]) -> Seen:
    app = client.app
    assert app is not None
    return app[SEEN]


async def status_of(
    client: TestClient[web.Request, web.Application], path: str, headers: dict[str, str] | None = None
) -> int:
    async with client.get(path, headers=headers) as response:
        await response.read()
        return response.status


# --- X-Request-Timeout --------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, 20.0),  # absent: the middleware's default
        ("1.5", 1.5),
        ("  2.5 ", 2.5),
        ("", 20.0),
        ("garbage", 20.0),
        ("nan", 20.0),
        ("inf", 20.0),
        ("-inf", 20.0),
        ("1e400", 20.0),
        ("86400", 86400.0),  # taken (no cap by default): the one-day ceiling of the wire grammar
        ("86401", 20.0),  # above the ceiling: the default, and no 500
        ("1e9", 20.0),  # above the ceiling
        ("1e300", 20.0),
    ],
)
async def test_a_usable_or_ignorable_header_runs_the_handler_with_its_deadline(
    header: str | None, expected: float
) -> None:
    async with serve(aiohttp_middleware_factory()) as client:
        assert await status_of(client, "/record", None if header is None else {"X-Request-Timeout": header}) == 200
        assert seen(client).calls == 1
        assert seen(client).timeout == pytest.approx(expected)


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("header", ["0", "-1", "-1e9", "5e-05", "0.0000", "0.004", "0.0049"])
async def test_an_expired_or_below_threshold_request_gets_408_and_the_handler_never_runs(header: str) -> None:
    async with serve(aiohttp_middleware_factory()) as client:
        assert await status_of(client, "/record", {"X-Request-Timeout": header}) == 408
        assert await status_of(client, "/slow", {"X-Request-Timeout": header}) == 408
        assert seen(client).calls == 0


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_threshold_and_the_expired_status_are_configurable() -> None:
    async with serve(aiohttp_middleware_factory(low_timeout_threshold=0.1, expired_status=504)) as client:
        assert await status_of(client, "/record", {"X-Request-Timeout": "0.05"}) == 504
        assert await status_of(client, "/record", {"X-Request-Timeout": "0.15"}) == 200
        assert seen(client).calls == 1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_max_timeout_caps_a_clients_deadline() -> None:
    async with serve(aiohttp_middleware_factory(timeout=20, max_timeout=5)) as client:
        for header, expected in [("86400", 5.0), ("3600", 5.0), ("2", 2.0), (None, 20.0)]:
            await status_of(client, "/record", None if header is None else {"X-Request-Timeout": header})
            assert seen(client).timeout == pytest.approx(expected), header


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize(
    ("method", "path", "header", "expected"),
    [
        ("GET", "/report", None, 60.0),  # a decorated function
        ("GET", "/report", "garbage", 60.0),
        ("GET", "/report", "2", 2.0),  # the client's deadline wins over the handler's default
        ("GET", "/thing", None, 45.0),  # a decorated View method
        ("POST", "/thing", None, 7.0),  # an undecorated one: the middleware's default
        ("GET", "/whole", None, 50.0),  # a decorated View class
        ("GET", "/record", None, 7.0),
    ],
)
async def test_per_handler_default_timeouts(method: str, path: str, header: str | None, expected: float) -> None:
    async with serve(aiohttp_middleware_factory(timeout=7)) as client:
        headers = None if header is None else {"X-Request-Timeout": header}
        async with client.request(method, path, headers=headers) as response:
            assert response.status == 200
        assert seen(client).timeout == pytest.approx(expected)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_per_handler_default_is_not_capped_by_max_timeout() -> None:
    async with serve(aiohttp_middleware_factory(max_timeout=5)) as client:
        await status_of(client, "/report")
        assert seen(client).timeout == pytest.approx(60)


# --- cancellation -------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_cancel_on_timeout_cancels_the_handler_and_answers_408() -> None:
    loop = asyncio.get_running_loop()
    async with serve(aiohttp_middleware_factory(cancel_on_timeout=True)) as client:
        started = loop.time()
        assert await status_of(client, "/slow", {"X-Request-Timeout": "1"}) == 408
        assert loop.time() - started == pytest.approx(1, abs=0.01)
        assert seen(client).calls == 1
        assert seen(client).cancelled == 1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_cancel_on_timeout_answers_the_configured_status() -> None:
    async with serve(aiohttp_middleware_factory(cancel_on_timeout=True, expired_status=504)) as client:
        assert await status_of(client, "/slow", {"X-Request-Timeout": "0.5"}) == 504


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_without_cancel_on_timeout_the_handler_finishes_past_its_deadline() -> None:
    loop = asyncio.get_running_loop()
    async with serve(aiohttp_middleware_factory()) as client:
        started = loop.time()
        assert await status_of(client, "/slow", {"X-Request-Timeout": "1"}) == 200
        assert loop.time() - started == pytest.approx(10, abs=0.01)
        assert seen(client).cancelled == 0


# --- X-Request-Priority -------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [
        ("high", Priority.NORMAL, Priority.HIGH),
        ("HIGH", Priority.NORMAL, Priority.HIGH),
        ("  low ", Priority.NORMAL, Priority.LOW),
        ("Normal", Priority.LOW, Priority.NORMAL),
        ("urgent", Priority.NORMAL, Priority.NORMAL),
        ("", Priority.LOW, Priority.LOW),
        (None, Priority.NORMAL, Priority.NORMAL),
        (None, Priority.HIGH, Priority.HIGH),
    ],
)
async def test_the_priority_header_reaches_the_handler(
    header: str | None, default: Priority, expected: Priority
) -> None:
    async with serve(aiohttp_middleware_factory(priority=default)) as client:
        assert await status_of(client, "/record", None if header is None else {"X-Request-Priority": header}) == 200
        assert seen(client).priority is expected


@pytest.mark.asyncio
async def test_one_request_leaves_nothing_behind_for_the_next_on_the_same_connection() -> None:
    async with serve(aiohttp_middleware_factory()) as client:
        await status_of(client, "/record", {"X-Request-Priority": "low", "X-Request-Timeout": "1"})
        assert (seen(client).priority, round(seen(client).timeout or 0)) == (Priority.LOW, 1)
        await status_of(client, "/record")  # kept alive: the same connection, the same server task
        assert (seen(client).priority, round(seen(client).timeout or 0)) == (Priority.NORMAL, 20)


# --- user middlewares and errors ----------------------------------------------------------------

ServerCallNext = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.mark.asyncio
async def test_user_middlewares_run_inside_and_see_the_context() -> None:
    log: list[str] = []

    async def tenant(request: web.Request, call_next: ServerCallNext, /) -> web.StreamResponse:
        log.append(f"tenant sees {get_context().priority}")
        response = await call_next(request)
        response.headers["X-Tenant"] = "acme"
        return response

    async with (
        serve(aiohttp_middleware_factory(middlewares=[tenant])) as client,
        client.get("/record", headers={"X-Request-Priority": "high"}) as response,
    ):
        assert response.headers["X-Tenant"] == "acme"
    assert log == ["tenant sees high"]


@pytest.mark.asyncio
async def test_overloaded_is_503_with_retry_after_and_the_handler_never_runs() -> None:
    async def shed(request: web.Request, call_next: ServerCallNext, /) -> web.StreamResponse:
        raise OverloadedError("too busy", request=request, retry_after=2.5)

    async with serve(aiohttp_middleware_factory(middlewares=[shed])) as client:
        async with client.get("/record") as response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "3"
            assert "X-Do-Not-Retry" not in response.headers
        assert seen(client).calls == 0


@pytest.mark.asyncio
async def test_a_deadline_error_escaping_the_handler_is_408_not_500() -> None:
    async with serve(aiohttp_middleware_factory()) as client:
        assert await status_of(client, "/spent") == 408


@pytest.mark.asyncio
async def test_aiohttp_http_exceptions_and_unknown_routes_pass_through() -> None:
    async with serve(aiohttp_middleware_factory()) as client:
        assert await status_of(client, "/forbidden") == 403
        assert await status_of(client, "/nowhere", {"X-Request-Timeout": "1"}) == 404
        assert await status_of(client, "/nowhere", {"X-Request-Timeout": "0"}) == 408  # refused first


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_custom_stack_uses_the_adapter_directly() -> None:
    stack = [ServerDeadline(timeout=3, handler_timeout=aiohttp_handler_timeout)]
    async with serve(aiohttp_server_middleware(stack)) as client:
        await status_of(client, "/record")
        assert seen(client).timeout == pytest.approx(3)
        assert seen(client).priority is None  # no priority middleware in this stack
        await status_of(client, "/report")
        assert seen(client).timeout == pytest.approx(60)


@pytest.mark.asyncio
async def test_an_empty_stack_is_a_pass_through() -> None:
    async with serve(aiohttp_server_middleware([])) as client:
        assert await status_of(client, "/record", {"X-Request-Timeout": "0"}) == 200


# --- composed once per handler (issue 14) -------------------------------------------------------


@web.middleware
async def inner(request: web.Request, handler: Any) -> web.StreamResponse:
    """An aiohttp middleware inside ours: the handler we are given is then aiohttp's chain."""
    response = await handler(request)
    response.headers["X-Inner"] = "ran"
    return response


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [("GET", "/report", 60.0), ("GET", "/record", 7.0), ("GET", "/thing", 45.0), ("POST", "/thing", 7.0)],
)
async def test_per_handler_defaults_hold_behind_an_inner_aiohttp_middleware(
    method: str, path: str, expected: float
) -> None:
    app = make_app(aiohttp_middleware_factory(timeout=7))
    app.middlewares.append(inner)
    async with TestClient(TestServer(app, host=HOST)) as client:
        for _ in range(2):  # the second request runs the chain kept for its handler
            async with client.request(method, path) as response:
                assert (response.status, response.headers["X-Inner"]) == (200, "ran")
            assert seen(client).timeout == pytest.approx(expected)
        assert seen(client).calls == 2


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_subclass_of_our_deadline_middleware_runs_as_given() -> None:
    from aio_pipeline.middlewares.priority import ServerPriority

    @dataclass(frozen=True, kw_only=True)
    class Audited(ServerDeadline):
        log: list[str] = field(default_factory=list)

        async def __call__(self, request: Any, call_next: Any, /) -> Any:
            self.log.append(request.path)
            return await super().__call__(request, call_next)

    audited = Audited(timeout=3)
    async with serve(aiohttp_server_middleware([audited, ServerPriority(default=Priority.LOW)])) as client:
        assert await status_of(client, "/record") == 200
        assert await status_of(client, "/record", {"X-Request-Timeout": "0"}) == 408
    assert audited.log == ["/record", "/record"]  # not fused away: the very instance ran
    assert (seen(client).calls, seen(client).priority) == (1, Priority.LOW)
    assert seen(client).timeout == pytest.approx(3)


@pytest.mark.asyncio
@pytest.mark.needs_extras
async def test_one_handler_on_two_routes_is_labelled_with_each_route() -> None:
    from prometheus_client import CollectorRegistry

    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    registry = CollectorRegistry()
    app = web.Application(
        middlewares=[aiohttp_middleware_factory(metrics_provider=PrometheusMetricsProvider(registry=registry))]
    )
    app[SEEN] = Seen()
    app.router.add_get("/a", record)
    app.router.add_get("/b/{id}", record)  # the same handler: the chain is kept per handler, labels per route
    async with TestClient(TestServer(app, host=HOST)) as client:
        for path in ["/a", "/b/1", "/b/2", "/a", "/nowhere/1", "/nowhere/2"]:
            await status_of(client, path)
    counts = {
        sample.labels["route"]: sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "aio_pipeline_server_request_duration_seconds_count"
    }
    assert counts == {"/a": 2, "/b/{id}": 2, "unmatched": 2}


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.needs_extras
async def test_the_deadline_and_the_duration_count_from_the_arrival_at_the_adapter() -> None:
    # One clock read per request, by the adapter: what runs before the deadline step (here a
    # user's middleware taking 0.5 s) spends the request's time, and is part of its duration.
    from prometheus_client import CollectorRegistry
    from structlog.testing import capture_logs

    from aio_pipeline.middlewares.log import ServerLog
    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    async def slow_start(request: web.Request, call_next: ServerCallNext, /) -> web.StreamResponse:
        await asyncio.sleep(0.5)
        return await call_next(request)

    registry = CollectorRegistry()
    factory = aiohttp_middleware_factory(
        metrics_provider=PrometheusMetricsProvider(registry=registry), outer_middlewares=[ServerLog(), slow_start]
    )
    with capture_logs() as logs:
        async with serve(factory) as client:
            assert await status_of(client, "/record", {"X-Request-Timeout": "2"}) == 200
            assert seen(client).timeout == pytest.approx(1.5)
    labels = {"method": "GET", "route": "/record", "status": "200", "client": "unknown"}
    assert registry.get_sample_value("aio_pipeline_server_request_duration_seconds_sum", labels) == pytest.approx(0.5)
    assert [entry["duration"] for entry in logs] == [pytest.approx(0.5)]


# --- every header value, fuzzed -----------------------------------------------------------------

HEADER_TEXT = st.text(
    alphabet=st.one_of(st.characters(min_codepoint=0x20, max_codepoint=0x7E), st.just("\t")), max_size=40
)
NUMBERS = st.one_of(
    st.floats().map(str),
    st.floats().map(lambda x: f"{x:.4f}" if math.isfinite(x) else str(x)),
    st.integers().map(str),
    st.sampled_from(["1e9", "1e308", "1e309", "-0", "+1", "1_0", "0x10", ".5", "5.", "NaN", "-Infinity"]),
)


@pytest_asyncio.fixture
async def capped_server() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with serve(aiohttp_middleware_factory(max_timeout=30)) as client:
        yield client


@pytest.mark.asyncio
@pytest.mark.looptime
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(timeout=st.one_of(HEADER_TEXT, NUMBERS), priority=HEADER_TEXT)
async def test_no_header_value_ever_gives_a_500(
    capped_server: TestClient[web.Request, web.Application], timeout: str, priority: str
) -> None:
    # One server for every example: it keeps no state between requests but the counter.
    before = seen(capped_server).calls
    headers = {"X-Request-Timeout": timeout, "X-Request-Priority": priority}
    status = await status_of(capped_server, "/record", headers)
    assert status in (200, 408)
    assert seen(capped_server).calls - before == (1 if status == 200 else 0)
    if status == 200:
        assert 0 < (seen(capped_server).timeout or 0) <= 30
        assert seen(capped_server).priority in set(Priority)


# --- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf, "5"])
def test_aiohttp_timeout_refuses_bad_seconds(bad: object) -> None:
    with pytest.raises(ValueError, match="seconds"):
        aiohttp_timeout(seconds=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"timeout": 0}, "timeout"),
        ({"max_timeout": -1}, "max_timeout"),
        ({"low_timeout_threshold": math.nan}, "low_timeout_threshold"),
        ({"priority": "high"}, "priority"),
        ({"expired_status": 200}, "expired_status"),
        ({"expired_status": 999}, "expired_status"),
    ],
)
def test_the_factory_refuses_bad_options_naming_them(options: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        aiohttp_middleware_factory(**options)


def test_the_adapter_is_a_new_style_middleware() -> None:
    # aiohttp warns (an error here) about old-style middleware factories; this one is new-style.
    middleware = aiohttp_middleware_factory()
    assert getattr(middleware, "__middleware_version__", None) == 1
    web.Application(middlewares=[middleware])


# --- client_header_name reaches our own observers only (issue 13, defect 15) -------------------


@dataclass
class CountsCallers:
    """A user's own stateful middleware that happens to have a ``client_header_name`` field."""

    client_header_name: str = "X-Service-Name"
    callers: list[str] = field(default_factory=list, init=False)

    async def __call__(self, request: web.Request, call_next: ServerCallNext, /) -> web.StreamResponse:
        self.callers.append(request.headers.get(self.client_header_name, "-"))
        return await call_next(request)


@dataclass(frozen=True)
class FixedHeader:
    """A user's middleware whose ``client_header_name`` is not an ``__init__`` argument."""

    client_header_name: str = field(default="X-Service-Name", init=False)
    seen: list[str] = field(default_factory=list)

    async def __call__(self, request: web.Request, call_next: ServerCallNext, /) -> web.StreamResponse:
        self.seen.append(request.headers.get(self.client_header_name, "-"))
        return await call_next(request)


@pytest.mark.asyncio
@pytest.mark.needs_extras
async def test_defect_15_client_header_name_never_replaces_a_users_middleware() -> None:
    from prometheus_client import CollectorRegistry
    from structlog.testing import capture_logs

    from aio_pipeline.middlewares.log import ServerLog
    from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

    registry = CollectorRegistry()
    counts, fixed = CountsCallers(), FixedHeader()
    factory = aiohttp_middleware_factory(  # before: ValueError, FixedHeader's field has init=False
        client_header_name="X-Caller",
        metrics_provider=PrometheusMetricsProvider(registry=registry),
        outer_middlewares=[ServerLog(), fixed],
        middlewares=[counts],
    )
    with capture_logs() as logs:
        async with serve(factory) as client:
            assert await status_of(client, "/record", {"X-Caller": "orders", "X-Service-Name": "billing"}) == 200
    # The very instances given ran, with their own header name.
    assert counts.callers == ["billing"]
    assert fixed.seen == ["billing"]
    # Our own ServerLog and Prometheus provider read the factory's header name.
    assert [entry["client"] for entry in logs] == ["orders"]
    labels = {"method": "GET", "route": "/record", "status": "200", "client": "orders"}
    assert registry.get_sample_value("aio_pipeline_server_request_duration_seconds_count", labels) == 1
