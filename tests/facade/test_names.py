"""Every name of aio-request's public surface the facade promises, and what some of them mean."""

from __future__ import annotations

import pytest

import aio_pipeline as aio_request
from aio_pipeline import Response
from aio_pipeline.testing import FakeTransport

FAMILIAR_NAMES = [
    "setup",
    "setup_v2",
    "Client",
    "Request",
    "Response",
    "ClosableResponse",
    "EmptyResponse",
    "Header",
    "Method",
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "head",
    "options",
    "request",
    "post_json",
    "put_json",
    "patch_json",
    "request_json",
    "Deadline",
    "Priority",
    "get_context",
    "set_context",
    "RequestStrategy",
    "SingleAttemptRequestStrategy",
    "SequentialRequestStrategy",
    "ParallelRequestStrategy",
    "RetryUntilDeadlineExpiredStrategy",
    "retry_until_deadline_expired",
    "MethodBasedStrategy",
    "single_attempt_strategy",
    "sequential_strategy",
    "parallel_strategy",
    "constant_delays",
    "linear_delays",
    "linear_backoff_delays",
    "split_deadline_between_attempts",
    "pass_deadline_through",
    "ResponseVerdict",
    "ResponseClassifier",
    "DefaultResponseClassifier",
    "CircuitBreaker",
    "DefaultCircuitBreaker",
    "NoopCircuitBreaker",
    "CircuitState",
    "Transport",
    "AioHttpTransport",
    "HttpxTransport",
    "aiohttp_middleware_factory",
    "aiohttp_timeout",
    "EndpointProvider",
    "StaticEndpointProvider",
    "DelegateEndpointProvider",
    "PercentileBasedRequestAttemptDelaysProvider",
]


@pytest.mark.parametrize("name", FAMILIAR_NAMES)
def test_familiar_name_is_public(name: str) -> None:
    assert name in aio_request.__all__
    assert getattr(aio_request, name) is not None


def test_strategy_class_names_are_our_strategies() -> None:
    assert isinstance(aio_request.single_attempt_strategy(), aio_request.SingleAttemptRequestStrategy)
    assert isinstance(aio_request.sequential_strategy(), aio_request.SequentialRequestStrategy)
    assert isinstance(aio_request.parallel_strategy(), aio_request.ParallelRequestStrategy)
    assert isinstance(aio_request.retry_until_deadline_expired(), aio_request.RetryUntilDeadlineExpiredStrategy)


def test_request_header_helpers_return_changed_copies() -> None:
    request = aio_request.get("x", headers={"A": "1"})
    assert request.update_headers({"a": "2"}).headers.getall("A") == ["2"]
    assert request.extend_headers({"a": "2"}).headers.getall("A") == ["1", "2"]
    assert request.replace(url="y").url == "y"
    assert request.headers.getall("A") == ["1"]


def test_empty_response_and_constants() -> None:
    response = aio_request.EmptyResponse(status=489)
    assert response.status == 489 and response.headers == {}
    assert isinstance(response, aio_request.ClosableResponse)
    assert aio_request.Method.GET == "GET"
    assert aio_request.Header.X_REQUEST_TIMEOUT == "X-Request-Timeout"


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_retry_until_deadline_expired_is_bounded_by_the_deadline_and_the_budget() -> None:
    async def refuse(request: aio_request.Request) -> Response:
        return Response(503)

    budget = aio_request.RetryBudget(ratio=0.0, min_per_second=0.5, window_seconds=10.0)  # 5 retries in all
    transport = FakeTransport([refuse] * 100)
    client = aio_request.setup(transport=transport, endpoint="http://127.0.0.1:1/", retry_budget=budget)
    strategy = aio_request.retry_until_deadline_expired(delays_provider=aio_request.constant_delays(delay=0.01))
    async with client.request(
        aio_request.get("x"), deadline=aio_request.Deadline.from_timeout(60), strategy=strategy
    ) as response:
        assert response.status == 503
    assert len(transport.sent) == 1 + 5

    transport = FakeTransport([refuse] * 100)
    client = aio_request.setup(transport=transport, endpoint="http://127.0.0.1:1/")  # the default budget
    async with client.request(
        aio_request.get("x"), deadline=aio_request.Deadline.from_timeout(1), strategy=strategy
    ) as response:
        assert response.status == 503
    assert 50 < len(transport.sent) <= 1 + 100  # ~0.01 s apart for 1 s; never past the reserve


def test_star_import_gives_every_familiar_name() -> None:
    namespace: dict[str, object] = {}
    exec("from aio_pipeline import *", namespace)
    assert set(FAMILIAR_NAMES) <= set(namespace)
