"""setup(call_middlewares=[ClientLog()]): one call event per call, retries and breaker changes
logged from the strategies' and breaker's events, and no secret in any log line."""

from __future__ import annotations

import aiohttp
import pytest

import aio_pipeline as aio_request

from .conftest import Scripted

pytestmark = [pytest.mark.asyncio, pytest.mark.needs_extras]


@pytest.mark.looptime
async def test_client_log_through_setup(scripted: Scripted, session: aiohttp.ClientSession) -> None:
    from structlog.testing import capture_logs

    scripted.plan("thing", (503, 0), *[(500, 0)] * 4)
    breaker = aio_request.DefaultCircuitBreaker[str, int](
        break_duration=5.0, sampling_duration=10.0, minimum_throughput=3, failure_threshold=0.5
    )
    client = aio_request.setup(
        transport=aio_request.AioHttpTransport(session),
        endpoint=scripted.base_url.replace("http://", "http://user:secret@"),
        call_middlewares=[aio_request.ClientLog()],
        circuit_breaker=breaker,
    )
    with capture_logs() as logs:
        request = aio_request.get("thing", query_parameters={"token": "secret"}, headers={"Cookie": "session=secret"})
        async with client.request(request) as response:
            assert response.status == 500  # 503, then 500, then 500: three attempts, all rejected
        async with client.request(request) as response:
            assert response.status == 502  # the circuit opened on the third failure
    events = [entry["event"] for entry in logs]
    assert events.count("aio_pipeline.client.call") == 2
    assert events.count("aio_pipeline.client.retry_scheduled") == 2
    assert "aio_pipeline.circuit_breaker.state_changed" in events
    calls = [entry for entry in logs if entry["event"] == "aio_pipeline.client.call"]
    assert calls[0]["route"] == "thing" and calls[0]["status"] == 500 and calls[0]["attempts"] == 3
    assert "secret" not in repr(logs)
    assert scripted.hits["thing"] == 3
