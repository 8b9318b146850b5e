"""setup()'s options, the synthetic responses, and the documented differences from aio-request."""

from __future__ import annotations

import aiohttp
import pytest

import aio_pipeline as aio_request
from aio_pipeline import Handler, Request, Response

from .conftest import Scripted

pytestmark = [pytest.mark.asyncio]


def make_client(session: aiohttp.ClientSession, endpoint: str, **options: object) -> aio_request.Client:
    return aio_request.setup(transport=aio_request.AioHttpTransport(session), endpoint=endpoint, **options)  # type: ignore[arg-type]


@pytest.mark.looptime
async def test_safe_methods_are_retried_by_default_unsafe_ones_never(
    scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    scripted.plan("get", (503, 0), (503, 0))
    scripted.plan("post", (503, 0), (503, 0))
    client = make_client(session, scripted.base_url)
    async with client.request(aio_request.get("get")) as response:
        assert response.status == 200
    async with client.request(aio_request.post("post", b"x")) as response:
        assert response.status == 503
    assert (scripted.hits["get"], scripted.hits["post"]) == (3, 1)


@pytest.mark.looptime
async def test_a_per_call_strategy_applies_to_any_method(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    scripted.plan("post", (503, 0))
    client = make_client(session, scripted.base_url)
    strategy = aio_request.sequential_strategy(attempts_count=2)
    async with client.request(aio_request.post_json("post", {"a": 1}), strategy=strategy) as response:
        assert response.status == 200
    assert scripted.hits["post"] == 2


@pytest.mark.looptime
async def test_timeout_becomes_408(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    scripted.plan("slow", (200, 10.0))
    client = make_client(session, scripted.base_url, timeout=1.0)
    async with client.request(aio_request.get("slow")) as response:
        assert response.status == 408
        assert isinstance(response, aio_request.EmptyResponse)
        assert await response.read() == b""


async def test_connection_refused_becomes_489(refused_port: str, session: aiohttp.ClientSession) -> None:
    client = make_client(session, refused_port, safe_method_strategy=aio_request.single_attempt_strategy())
    async with client.request(aio_request.get("x")) as response:
        assert response.status == 489


async def test_too_many_redirects_becomes_488_not_to_be_retried(
    scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    scripted.plan("loop", *[(302, 0)] * 30)
    client = make_client(session, scripted.base_url)
    async with client.request(aio_request.get("loop", max_redirects=3)) as response:
        assert response.status == 488
        assert response.headers["X-Do-Not-Retry"] == "1"
    assert scripted.hits["loop"] == 4  # one attempt: the first request and 3 redirects


async def test_an_invalid_request_still_raises(session: aiohttp.ClientSession, scripted: Scripted) -> None:
    client = make_client(session, scripted.base_url)
    with pytest.raises(aio_request.InvalidRequestError, match="'id'"):
        async with client.request(aio_request.get("users/{id}", path_parameters={"x": 1})):
            pass


async def test_endpoint_provider_is_resolved_per_call(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    calls: list[int] = []

    async def discover() -> str:
        calls.append(1)
        return scripted.base_url + "api/"

    client = aio_request.setup(
        transport=aio_request.AioHttpTransport(session),
        endpoint_provider=aio_request.DelegateEndpointProvider(discover),
    )
    for _ in range(2):
        async with client.request(aio_request.get("x")) as response:
            assert response.status == 200
    assert calls == [1, 1]
    assert scripted.hits["api/x"] == 2


async def test_exactly_one_of_endpoint_and_provider(session: aiohttp.ClientSession) -> None:
    transport = aio_request.AioHttpTransport(session)
    with pytest.raises(ValueError, match="exactly one"):
        aio_request.setup(transport=transport)
    with pytest.raises(aio_request.InvalidRequestError, match="endpoint"):
        aio_request.setup(transport=transport, endpoint="not a url")


@pytest.mark.looptime
@pytest.mark.parametrize("kind", ["sync", "async with flag"])
async def test_request_enricher_runs_per_attempt(kind: str, scripted: Scripted, session: aiohttp.ClientSession) -> None:
    scripted.plan("thing", (503, 0))
    flags: list[bool] = []

    def enrich(request: Request) -> Request:
        return request.update_headers({"X-Tenant": "t1"})

    async def enrich_v2(request: Request, emit_system_headers: bool) -> Request:
        flags.append(emit_system_headers)
        return request.update_headers({"X-Tenant": "t1"})

    client = make_client(session, scripted.base_url, request_enricher=enrich if kind == "sync" else enrich_v2)
    async with client.request(aio_request.get("thing")) as response:
        assert response.status == 200
    assert [h["X-Tenant"] for h in scripted.headers["thing"]] == ["t1", "t1"]
    # The older two-argument enricher is given False, as aio-request 0.2.9's setup_v2 gives it
    # (the flag was emit_system_headers: the system headers are ours to write).
    assert flags == ([] if kind == "sync" else [False, False])


@pytest.mark.looptime
async def test_user_middlewares_per_attempt_and_per_call(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    scripted.plan("thing", (503, 0))
    log: list[str] = []

    async def per_attempt(request: Request, call_next: Handler[Request, Response], /) -> Response:
        log.append(f"attempt {request.attempt}")
        return await call_next(request.update_headers({"Authorization": "Bearer t", "X-Request-Attempt": "99"}))

    async def per_call(request: Request, call_next: Handler[Request, Response], /) -> Response:
        log.append("call")
        return await call_next(request)

    client = make_client(session, scripted.base_url, middlewares=[per_attempt], call_middlewares=[per_call])
    async with client.request(aio_request.get("thing")) as response:
        assert response.status == 200
    assert log == ["call", "attempt 1", "attempt 2"]
    # Our system headers are written after user middlewares: a user's value cannot fake them.
    assert [h["X-Request-Attempt"] for h in scripted.headers["thing"]] == ["1", "2"]
    assert all(h["Authorization"] == "Bearer t" for h in scripted.headers["thing"])


@pytest.mark.looptime
async def test_response_classifier_override(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    scripted.plan("thing", (503, 0))
    classifier = aio_request.DefaultResponseClassifier(verdict_for_status={503: aio_request.ResponseVerdict.ACCEPT})
    client = make_client(session, scripted.base_url, response_classifier=classifier)
    async with client.request(aio_request.get("thing")) as response:
        assert response.status == 503
    assert scripted.hits["thing"] == 1


@pytest.mark.looptime  # the clock stands still during a call: the timeout header is exact
async def test_priority_and_system_headers_switch(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    quiet = make_client(session, scripted.base_url, emit_system_headers=False)
    async with quiet.request(aio_request.get("quiet")):
        pass
    loud = make_client(session, scripted.base_url, priority=aio_request.Priority.LOW)
    async with loud.request(aio_request.get("loud")):
        pass
    async with loud.request(aio_request.get("high"), priority=aio_request.Priority.HIGH):
        pass
    assert "X-Request-Timeout" not in scripted.headers["quiet"][0]
    assert scripted.headers["loud"][0]["X-Request-Priority"] == "low"
    assert scripted.headers["high"][0]["X-Request-Priority"] == "high"
    # Switched off, none of the system headers is sent (not only the timeout, which a call with
    # no deadline might lack anyway); switched on, all three are, the timeout from the default.
    system = ("X-Request-Timeout", "X-Request-Priority", "X-Request-Attempt")
    assert [name for name in system if name in scripted.headers["quiet"][0]] == []
    for path in ("loud", "high"):
        (headers,) = scripted.headers[path]
        assert (headers["X-Request-Timeout"], headers["X-Request-Attempt"]) == ("20.0000", "1")
    assert dict(scripted.hits) == {"quiet": 1, "loud": 1, "high": 1}


@pytest.mark.looptime  # the clock stands still during a call: the timeout header is exact
async def test_explicit_deadline_inside_a_shorter_inherited_one(
    scripted: Scripted, session: aiohttp.ClientSession
) -> None:
    client = make_client(session, scripted.base_url)
    with aio_request.set_context(deadline=aio_request.Deadline.from_timeout(0.5)):
        async with client.request(aio_request.get("thing"), deadline=aio_request.Deadline.from_timeout(30)):
            pass
    assert float(scripted.headers["thing"][0]["X-Request-Timeout"]) <= 0.5
    # Exactly the inherited 0.5 s: not the explicit 30 s, and not some smaller or zero value.
    (headers,) = scripted.headers["thing"]
    assert headers["X-Request-Timeout"] == "0.5000"


async def test_user_transport_class_with_aio_request_interface(scripted: Scripted) -> None:
    class Canned(aio_request.Transport):
        def __init__(self) -> None:
            self.calls: list[tuple[str | None, str, float | None]] = []

        async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
            self.calls.append((endpoint, request.url, timeout))
            return aio_request.EmptyResponse(status=204)

    transport = Canned()
    client = aio_request.setup(transport=transport, endpoint="http://127.0.0.1:1/")
    async with client.request(aio_request.get("x"), deadline=aio_request.Deadline.from_timeout(2)) as response:
        assert response.status == 204
    ((endpoint, url, timeout),) = transport.calls
    assert (endpoint, url) == ("http://127.0.0.1:1/", "x")
    assert timeout is not None and 1.5 < timeout <= 2


async def test_transport_send_can_be_called_directly(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    transport = aio_request.AioHttpTransport(session)
    response = await transport.send(scripted.base_url, aio_request.get("direct"), 5.0)
    async with response:
        assert response.status == 200
    assert scripted.hits["direct"] == 1
