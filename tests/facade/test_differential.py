"""The facade against aio-request 0.2.9 itself: one scenario, run on both, what the caller sees.

Each scenario runs once with ``aio_request`` and once with ``aio_pipeline`` (imported as the
library a user would import), against the same local server on 127.0.0.1, and the two runs are
compared: status, headers that matter, body, exceptions, and how many requests the server got.
Where we differ by design (README, "Coming from aio-request"), the test asserts the documented
difference, not equality.

Time is virtual (looptime). aio-request reads ``time.perf_counter()`` for its deadlines and
``time.time()`` for its breaker, which a virtual loop does not move, so the ``reference``
fixture points those reads at the running loop's clock: both libraries then live on the same
virtual time. The suite needs aio-request installed (``pip install -e '.[compat]'``); without it
it fails, saying so, rather than skipping.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import yarl
from aiohttp import test_utils, web
from multidict import CIMultiDict

import aio_pipeline
from aio_pipeline import ConnectError
from aio_pipeline.facade import synthetic_send

from ..conftest import Server
from .conftest import Scripted

pytestmark = [pytest.mark.needs_extras]

Lib = types.ModuleType


@pytest.fixture
def reference(monkeypatch: pytest.MonkeyPatch) -> Lib:
    """aio-request 0.2.9, its clock reads moved onto the running loop's (virtual) clock."""
    try:
        import aio_request
    except ImportError as error:  # pragma: no cover - the environment's fault, said plainly
        pytest.fail(f"the differential suite needs aio-request 0.2.9: pip install -e '.[compat]' ({error})")
    assert aio_request.__version__ == "0.2.9", f"the suite is written against 0.2.9, found {aio_request.__version__}"

    def loop_time() -> float:
        return asyncio.get_running_loop().time()

    for name in ("utils", "deadline", "client", "aiohttp", "percentile_based_request_attempt_delays_provider"):
        module = getattr(aio_request, name, None) or __import__(f"aio_request.{name}", fromlist=["_"])
        if hasattr(module, "perf_counter"):
            monkeypatch.setattr(module, "perf_counter", loop_time)
    monkeypatch.setattr(aio_request.circuit_breaker, "time", types.SimpleNamespace(time=loop_time))
    return aio_request


@pytest.fixture
def libs(reference: Lib) -> list[Lib]:
    """The two libraries, reference first."""
    return [reference, aio_pipeline]


@dataclass(frozen=True)
class Seen:
    """What the caller saw, and how many requests reached the server."""

    status: int
    do_not_retry: bool
    circuit_breaker: str | None
    body: Any
    hits: int


async def call(
    lib: Lib,
    scripted: Scripted,
    session: aiohttp.ClientSession,
    request: Any,
    *,
    setup: dict[str, Any] | None = None,
    **options: Any,
) -> Seen:
    """One call of ``request`` through ``lib.setup(...)`` against ``scripted``, which is reset after."""
    path = str(request.url)
    client = lib.setup(transport=lib.AioHttpTransport(session), endpoint=scripted.base_url, **(setup or {}))
    async with client.request(request, **options) as response:
        body = await response.json() if response.status < 300 else None
        seen = Seen(
            response.status,
            "X-Do-Not-Retry" in response.headers,
            response.headers.get("X-Circuit-Breaker"),
            body,
            scripted.hits[path],
        )
    scripted.hits.clear()
    scripted.plans.clear()
    scripted.headers.clear()
    return seen


# --- strategies --------------------------------------------------------------------------------


STRATEGIES: dict[str, Callable[[Lib], Any]] = {
    "single": lambda lib: lib.single_attempt_strategy(),
    "sequential": lambda lib: lib.sequential_strategy(attempts_count=3, delays_provider=lib.constant_delays(delay=0.1)),
    "sequential, linear": lambda lib: lib.sequential_strategy(
        delays_provider=lib.linear_backoff_delays(min_delay_seconds=0.1, delay_multiplier=0.1, jitter=0)
    ),
    "parallel": lambda lib: lib.parallel_strategy(attempts_count=3, delays_provider=lib.constant_delays(delay=0.1)),
    "until deadline, single": lambda lib: lib.retry_until_deadline_expired(
        lib.single_attempt_strategy(), delays_provider=lib.constant_delays(delay=0.1)
    ),
    "until deadline, sequential": lambda lib: lib.retry_until_deadline_expired(
        lib.sequential_strategy(attempts_count=2, delays_provider=lib.constant_delays(delay=0.1)),
        delays_provider=lib.constant_delays(delay=0.1),
    ),
}

#: Script of the server, and what a caller of each strategy sees: (status, hits).
SCRIPTS = {
    "two 503s then 200": [(503, 0.0), (503, 0.0), (200, 0.0)],
    "a 503 then 200": [(503, 0.0), (200, 0.0)],
    "a 404": [(404, 0.0)],
}


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("strategy", STRATEGIES)
async def test_every_strategy_answers_and_sends_as_aio_request(
    libs: list[Lib], scripted: Scripted, session: aiohttp.ClientSession, strategy: str, script: str
) -> None:
    seen = []
    for lib in libs:
        scripted.plan("thing", *SCRIPTS[script])
        seen.append(
            await call(
                lib,
                scripted,
                session,
                lib.get("thing"),
                deadline=lib.Deadline.from_timeout(5),
                strategy=STRATEGIES[strategy](lib),
            )
        )
    theirs, ours = seen
    if strategy == "parallel" and script != "a 404":
        # Different by design: a rejected attempt starts the next one at once, and hedges go one
        # delay apart; aio-request's hedges all wait for their slot, counted from the start
        # (constant delays fire every hedge together), so it sends more for the same answer.
        assert (theirs.status, ours.status) == (200, 200)
        assert (theirs.hits, ours.hits) == {"two 503s then 200": (3, 3), "a 503 then 200": (3, 2)}[script]
        return
    assert ours == theirs


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_default_strategies_of_setup(
    libs: list[Lib], scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    seen = []
    for lib in libs:
        scripted.plan("thing", (503, 0.0), (503, 0.0))
        get = await call(lib, scripted, session, lib.get("thing"))  # 3 sequential attempts
        scripted.plan("thing", (503, 0.0), (503, 0.0))
        post = await call(lib, scripted, session, lib.post("thing", b"{}"))  # one attempt
        seen.append((get, post))
    theirs, ours = seen
    assert ours == theirs
    assert ours[0].hits == 3 and ours[1].hits == 1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_unsafe_method_strategy_given_to_setup_is_the_callers_choice(
    libs: list[Lib], scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    seen = []
    for lib in libs:
        retrying = lib.sequential_strategy(attempts_count=3, delays_provider=lib.constant_delays(delay=0.1))
        for request in (lib.post("thing", b"{}"), lib.patch("thing", b"{}")):
            scripted.plan("thing", (503, 0.0), (503, 0.0))
            seen.append(await call(lib, scripted, session, request, setup={"unsafe_method_strategy": retrying}))
    theirs, ours = seen[:2], seen[2:]
    assert ours == theirs
    assert [s.hits for s in ours] == [3, 3]  # POST and PATCH retried: the user asked for it


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_parallel_strategy_with_its_defaults_returns_the_fast_hedge(
    libs: list[Lib], scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    seen = []
    for lib in libs:
        scripted.plan("thing", (200, 5.0), (200, 0.0))  # the first attempt is slow, the second fast
        seen.append(
            await call(
                lib,
                scripted,
                session,
                lib.get("thing"),
                deadline=lib.Deadline.from_timeout(1),
                strategy=lib.parallel_strategy(),
            )
        )
    theirs, ours = seen
    assert ours == theirs
    assert ours.status == 200 and ours.hits == 2


# --- deadlines: the low-timeout threshold, deadline providers --------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_call_below_the_low_timeout_threshold_is_a_final_408_never_sent(
    libs: list[Lib], scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    seen = []
    for lib in libs:
        seen.append(
            await call(
                lib,
                scripted,
                session,
                lib.get("thing"),
                setup={"low_timeout_threshold": 0.5},
                deadline=lib.Deadline.from_timeout(0.4),
            )
        )
        seen.append(await call(lib, scripted, session, lib.get("thing"), deadline=lib.Deadline.from_timeout(0)))
    theirs, ours = seen[:2], seen[2:]
    assert ours == theirs
    assert all(s == Seen(408, True, None, None, 0) for s in ours)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_no_retry_goes_out_with_less_than_the_threshold_left(
    libs: list[Lib], scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    # The first attempt answers 503 after 0.4 s of a 1 s deadline; the retry would start at
    # 0.6 s with 0.4 s left, under the 0.5 s threshold: it must not be sent.
    seen = []
    for lib in libs:
        scripted.plan("thing", (503, 0.4), (200, 0.0))
        seen.append(
            await call(
                lib,
                scripted,
                session,
                lib.get("thing"),
                setup={"low_timeout_threshold": 0.5},
                deadline=lib.Deadline.from_timeout(1),
                strategy=lib.sequential_strategy(attempts_count=3, delays_provider=lib.constant_delays(delay=0.2)),
            )
        )
    theirs, ours = seen
    assert theirs.hits == ours.hits == 1
    # Different by design: aio-request sleeps, then answers its synthetic 408; we stop before
    # the pointless sleep and return the last real answer.
    assert (theirs.status, theirs.do_not_retry) == (408, True)
    assert (ours.status, ours.do_not_retry) == (503, False)


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("split", ["pass through", "split", "split between 2"])
async def test_deadline_providers_give_each_attempt_the_same_budget(
    libs: list[Lib], scripted: Scripted, session: aiohttp.ClientSession, split: str
) -> None:
    timeouts = []
    for lib in libs:
        provider = {
            "pass through": lib.pass_deadline_through(),
            "split": lib.split_deadline_between_attempts(),
            "split between 2": lib.split_deadline_between_attempts(attempts_count_to_split=2),
        }[split]
        scripted.plan("thing", (503, 0.0), (503, 0.0), (200, 0.0))
        strategy = lib.sequential_strategy(
            attempts_count=3, delays_provider=lib.constant_delays(delay=0), deadline_provider=provider
        )
        client = lib.setup(transport=lib.AioHttpTransport(session), endpoint=scripted.base_url)
        async with client.request(lib.get("thing"), deadline=lib.Deadline.from_timeout(3), strategy=strategy) as r:
            assert r.status == 200
        timeouts.append([float(h["X-Request-Timeout"]) for h in scripted.headers["thing"]])
        scripted.headers.clear()
        scripted.hits.clear()
    theirs, ours = timeouts
    expected = {"pass through": [3, 3, 3], "split": [1, 1.5, 3], "split between 2": [1.5, 3, 3]}[split]
    assert theirs == pytest.approx(expected, abs=0.01)
    assert ours == pytest.approx(theirs, abs=0.01)


def test_split_deadline_between_attempts_refuses_a_split_below_two(libs: list[Lib]) -> None:
    for lib in libs:
        with pytest.raises(ValueError, match="attempts_count_to_split"):
            lib.split_deadline_between_attempts(attempts_count_to_split=1)


# --- the circuit breaker ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_breaker_in_setup_trips_on_a_failing_endpoint(
    libs: list[Lib], scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    seen = []
    for lib in libs:
        breaker = lib.DefaultCircuitBreaker(
            break_duration=5.0, failure_threshold=0.5, minimum_throughput=2, sampling_duration=1.0
        )
        calls = []
        for _ in range(3):
            scripted.plan("thing", *[(500, 0.0)] * 3)
            calls.append(await call(lib, scripted, session, lib.get("thing"), setup={"circuit_breaker": breaker}))
        seen.append(calls)
    theirs, ours = seen
    assert ours == theirs
    # The first call's own retries open the circuit after two 500s; its third attempt and every
    # later call get the breaker's 502.
    assert [(s.status, s.circuit_breaker, s.hits) for s in ours] == [(502, "1", 2), (502, "1", 0), (502, "1", 0)]


async def _succeed() -> int:
    return 200


async def _fail() -> int:
    return 500


def _ok(result: int) -> bool:
    return result < 500


async def _trip(lib: Lib) -> Any:
    breaker = lib.DefaultCircuitBreaker(
        break_duration=1.0, failure_threshold=0.5, minimum_throughput=2, sampling_duration=10.0
    )
    for _ in range(2):
        await breaker.execute(scope="s", operation=_fail, fallback=-1, is_successful=_ok)
    assert breaker.state["s"] == "open"
    await asyncio.sleep(1.5)  # past the break
    return breaker


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_successful_half_open_probe_closes_the_circuit(libs: list[Lib]) -> None:
    for lib in libs:
        breaker = await _trip(lib)
        assert await breaker.execute(scope="s", operation=_succeed, fallback=-1, is_successful=_ok) == 200
        assert breaker.state["s"] == lib.CircuitState.CLOSED, lib.__name__
        assert await breaker.execute(scope="s", operation=_succeed, fallback=-1, is_successful=_ok) == 200


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_failed_half_open_probe_opens_the_circuit_again(libs: list[Lib]) -> None:
    for lib in libs:
        breaker = await _trip(lib)
        assert await breaker.execute(scope="s", operation=_fail, fallback=-1, is_successful=_ok) == 500
        assert breaker.state["s"] == lib.CircuitState.OPEN, lib.__name__
        assert await breaker.execute(scope="s", operation=_succeed, fallback=-1, is_successful=_ok) == -1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_calls_during_the_probe_get_the_fallback_while_it_stays_half_open(libs: list[Lib]) -> None:
    for lib in libs:
        breaker = await _trip(lib)
        probe_may_finish = asyncio.Event()

        async def slow_probe(probe_may_finish: asyncio.Event = probe_may_finish) -> int:
            await probe_may_finish.wait()
            return 200

        probe = asyncio.create_task(breaker.execute(scope="s", operation=slow_probe, fallback=-1, is_successful=_ok))
        await asyncio.sleep(0.1)
        assert await breaker.execute(scope="s", operation=_succeed, fallback=-1, is_successful=_ok) == -1
        assert breaker.state["s"] == lib.CircuitState.HALF_OPEN, lib.__name__
        probe_may_finish.set()
        assert await probe == 200
        assert breaker.state["s"] == lib.CircuitState.CLOSED, lib.__name__


# --- endpoint providers ----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_endpoint_providers_yield_a_yarl_url(libs: list[Lib]) -> None:
    async def discovered() -> str:
        return "http://127.0.0.1:8080/api/"

    got = []
    for lib in libs:
        providers = [
            lib.StaticEndpointProvider("http://127.0.0.1:8080/api/"),
            lib.StaticEndpointProvider(yarl.URL("http://127.0.0.1:8080/api/")),
            lib.DelegateEndpointProvider(lambda: "http://127.0.0.1:8080/api/"),
            lib.DelegateEndpointProvider(discovered),
        ]
        got.append([await provider.get() for provider in providers])
    theirs, ours = got
    assert ours == theirs == [yarl.URL("http://127.0.0.1:8080/api/")] * 4
    assert all(type(url) is yarl.URL for url in ours)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_client_with_an_endpoint_provider_calls_where_it_says(
    libs: list[Lib], scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    seen = []
    for lib in libs:

        async def discovered() -> str:
            return scripted.base_url

        client = lib.setup(
            transport=lib.AioHttpTransport(session), endpoint_provider=lib.DelegateEndpointProvider(discovered)
        )
        async with client.request(lib.get("thing")) as response:
            seen.append((response.status, await response.json(), scripted.hits["thing"]))
        scripted.hits.clear()
    theirs, ours = seen
    assert ours == theirs == (200, {"path": "thing", "status": 200}, 1)


# --- delay providers ----------------------------------------------------------------------------


def test_constant_and_linear_delays_are_aio_requests(libs: list[Lib]) -> None:
    delays = []
    for lib in libs:
        constant = lib.constant_delays(delay=0.3)
        linear = lib.linear_backoff_delays(min_delay_seconds=0.1, delay_multiplier=0.2, jitter=0)
        old_name = lib.linear_delays(delay_multiplier=0.05, jitter=0)
        delays.append(
            [constant(1), constant(5), linear(0), linear(1), linear(3), old_name(2), lib.constant_delays()(1)]
        )
    theirs, ours = delays
    assert ours == pytest.approx(theirs)


def test_linear_delays_jitter_stays_within_its_bounds(libs: list[Lib]) -> None:
    for lib in libs:
        provider = lib.linear_backoff_delays()  # 0.05 per attempt, +-20%
        samples = [provider(2) for _ in range(2000)]
        assert 0.08 <= min(samples) < 0.09 and 0.11 < max(samples) <= 0.12, lib.__name__


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_percentile_provider_starts_at_its_minimum_and_learns_from_elapsed(libs: list[Lib]) -> None:
    answers = []
    for lib in libs:
        provider = lib.PercentileBasedRequestAttemptDelaysProvider(min_delay_seconds=0.1, max_delay_seconds=10)
        request = lib.get("users/{id}", path_parameters={"id": 1})
        before = provider(request, 1)
        for _ in range(30):
            provider.observe(request, lib.EmptyResponse(status=200, elapsed=0.3))
            provider.observe(request, lib.EmptyResponse(status=503, elapsed=5.0))  # not a latency
            provider.observe(request, lib.EmptyResponse(status=200, elapsed=-1))  # not measured
        answers.append((before, provider(request, 1), provider(lib.get("other"), 1), provider(request, 2)))
    theirs, ours = answers
    assert theirs[:3] == pytest.approx((0.1, 0.3, 0.1), abs=1e-6)
    assert ours[:3] == pytest.approx(theirs[:3], abs=1e-6)
    # Different by design: ours is the delay between two attempts (hedges go one delay apart,
    # the schedule aio-request's delay * attempt gives counted from the first attempt).
    assert (theirs[3], ours[3]) == pytest.approx((0.6, 0.3), abs=1e-6)


# --- the response API and request builders ------------------------------------------------------


@pytest.mark.asyncio
async def test_the_response_api(libs: list[Lib], server: Server, session: aiohttp.ClientSession) -> None:
    seen = []
    for lib in libs:
        client = lib.setup(transport=lib.AioHttpTransport(session), endpoint=server.base_url + "/")
        async with client.request(lib.get("json-as-text")) as response:
            with pytest.raises(lib.UnexpectedContentTypeError):
                await response.json()
            text_json = await response.json(content_type=None)
            text = (response.content_type, response.is_json, await response.text(), text_json)
        async with client.request(lib.post_json("echo", {"ü": 1})) as response:
            document = await response.json(encoding="utf-8")
            checks = (
                response.status,
                response.is_informational(),
                response.is_successful(),
                response.is_redirection(),
                response.is_client_error(),
                response.is_server_error(),
                response.content_type,
                response.is_json,
                document,
            )
            elapsed = response.elapsed
        async with client.request(lib.get("echo")) as response:  # three sequential attempts at most
            timed = response.elapsed >= 0
        empty = lib.EmptyResponse(status=489, elapsed=0.25)
        synthetic = (empty.status, dict(empty.headers), empty.elapsed, await empty.read(), await empty.text())
        seen.append((text, checks, synthetic, timed, elapsed))
    theirs, ours = seen
    assert ours[:4] == theirs[:4]
    # Different by design: a lone attempt nobody watches is not timed (a plain call reads no
    # clock for it), so its elapsed is -1, aio-request's value for "not measured".
    assert theirs[4] >= 0 and ours[4] == -1


BUILDERS: dict[str, Callable[[Lib], Any]] = {
    "get": lambda lib: lib.get("echo", query_parameters={"a": [1, 2], "b": None, "c": "x"}, headers={"X-A": "1"}),
    "post": lambda lib: lib.post("echo", b"raw", headers={"X-A": "1"}),
    "put": lambda lib: lib.put("echo", b"raw"),
    "patch": lambda lib: lib.patch("echo", b"raw"),
    "delete": lambda lib: lib.delete("echo"),
    "request": lambda lib: lib.request("PUT", "echo", body=b"raw"),
    "post_json": lambda lib: lib.post_json("echo", {"a": [1, "é"]}),
    "put_json": lambda lib: lib.put_json("echo", [1, 2], encoding="utf-8"),
    "patch_json": lambda lib: lib.patch_json("echo", {"a": 1}, content_type="application/merge-patch+json"),
    "request_json bytes": lambda lib: lib.request_json("POST", "echo", b'{"already": "encoded"}'),
    "post_json bytes": lambda lib: lib.post_json("echo", b"[1, 2]"),
    "path parameters": lambda lib: lib.get("files/{name}", path_parameters={"name": "a.txt"}),
    "extended headers": lambda lib: lib.get("echo", headers={"X-A": "1"}).extend_headers({"x-a": "2"}),
    "updated headers": lambda lib: lib.get("echo", headers={"X-A": "1"}).update_headers({"x-a": "2"}),
}


@pytest.mark.asyncio
@pytest.mark.parametrize("builder", BUILDERS)
async def test_request_builders_send_what_aio_request_sends(
    libs: list[Lib], server: Server, session: aiohttp.ClientSession, builder: str
) -> None:
    sent = []
    for lib in libs:
        request = BUILDERS[builder](lib)
        client = lib.setup(transport=lib.AioHttpTransport(session), endpoint=server.base_url + "/")
        async with client.request(request) as response:
            assert response.status == 200
        (seen,) = server.seen
        server.seen.clear()
        sent.append(
            (
                seen.method,
                seen.path,
                sorted(seen.query),
                seen.body,
                seen.headers.getall("Content-Type", []),
                seen.headers.getall("X-A", []),
            )
        )
    theirs, ours = sent
    assert ours == theirs


def test_changed_headers_equal_aio_requests_multidicts(libs: list[Lib]) -> None:
    reference, ours = libs
    base = {"X-A": "1", "X-B": "b"}
    theirs = reference.get("x", headers=base).extend_headers({"x-a": "2"}).headers
    mine = ours.get("x", headers=base).extend_headers({"x-a": "2"}).headers
    assert mine == theirs and theirs == mine and mine == CIMultiDict(theirs)
    theirs = reference.get("x", headers=base).update_headers({"x-a": "2"}).headers
    mine = ours.get("x", headers=base).update_headers({"x-a": "2"}).headers
    # A replaced name stays where it was, in both: equal as multidicts, order included.
    assert mine == theirs and theirs == mine and list(mine.items()) == list(theirs.items())


# --- Transport.send() called directly --------------------------------------------------------


@pytest.mark.asyncio
async def test_transport_send_called_directly(
    libs: list[Lib], refused_port: str, session: aiohttp.ClientSession
) -> None:
    reference, ours = libs
    theirs = await reference.AioHttpTransport(session).send(yarl.URL(refused_port), reference.get("x"), 1.0)
    assert theirs.status == 489
    await theirs.close()
    # Different by design: our transport raises the typed error (a refused connection is a
    # ConnectError: the request never left, which a retry of a POST needs to know) ...
    with pytest.raises(ConnectError):
        await ours.AioHttpTransport(session).send(refused_port, ours.get("x"), 1.0)
    # ... and synthetic_send answers as aio-request's transport does.
    async with await synthetic_send(ours.AioHttpTransport(session), yarl.URL(refused_port), ours.get("x"), 1.0) as mine:
        assert (mine.status, mine.elapsed >= 0) == (489, True)


# --- the server middleware --------------------------------------------------------------------


@pytest_asyncio.fixture
async def serve() -> AsyncIterator[Callable[[web.Application], Awaitable[str]]]:
    servers: list[test_utils.TestServer] = []

    async def start(app: web.Application) -> str:
        server = test_utils.TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return f"http://127.0.0.1:{server.port}"

    yield start
    for server in servers:
        await server.close()


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_aiohttp_server_middleware(
    libs: list[Lib], serve: Callable[[web.Application], Awaitable[str]], session: aiohttp.ClientSession
) -> None:
    seen = []
    for lib in libs:
        contexts: list[tuple[float, str]] = []

        async def handler(
            request: web.Request, lib: Lib = lib, contexts: list[tuple[float, str]] = contexts
        ) -> web.Response:
            context = lib.get_context()
            contexts.append((round(context.deadline.timeout, 2), str(context.priority)))
            return web.Response(text="ok")

        async def short(request: web.Request, handler: Any = handler) -> web.Response:
            return await handler(request)  # type: ignore[no-any-return]

        app = web.Application(middlewares=[lib.aiohttp_middleware_factory()])
        app.router.add_get("/plain", handler)
        app.router.add_get("/short", lib.aiohttp_timeout(seconds=0.3)(short))
        base = await serve(app)
        statuses = []
        for path, headers in [
            ("/plain", {}),
            ("/plain", {"X-Request-Timeout": "5", "X-Request-Priority": "HIGH"}),
            ("/plain", {"X-Request-Timeout": "0.004"}),
            ("/plain", {"X-Request-Timeout": "0"}),
            ("/short", {}),
            ("/plain", {"X-Request-Priority": "nonsense"}),
        ]:
            async with session.get(base + path, headers=headers) as response:
                statuses.append(response.status)
        seen.append((statuses, contexts))
    theirs, ours = seen
    assert ours == theirs
    assert ours == (
        [200, 200, 408, 408, 200, 200],
        [(20.0, "normal"), (5.0, "high"), (0.3, "normal"), (20.0, "normal")],
    )
