"""``ClientLog`` and ``ServerLog``: event names, fields, levels, redaction and contextvars.

Logs are captured with ``structlog.testing.capture_logs``; the middlewares are driven directly
with scripted ``call_next`` functions, the server side with a stand-in request. Live logs
against a real server are in ``tests/integration/test_observability_live.py``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from aio_pipeline import (
    AttemptFinished,
    AttemptStarted,
    BudgetExhausted,
    CircuitOpenError,
    CircuitState,
    CircuitStateChanged,
    Deadline,
    DeadlineExceededError,
    DeadlineRejectedError,
    DefaultCircuitBreaker,
    HedgeStarted,
    OverloadedError,
    Priority,
    Request,
    Response,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryScheduled,
    get,
    set_context,
)
from aio_pipeline.middlewares.log import ClientLog, ServerLog
from aio_pipeline.policy import wants

ENDPOINT = "http://127.0.0.1:8080/api/"
extras = pytest.mark.needs_extras


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    testing = pytest.importorskip("structlog.testing")
    with testing.capture_logs() as captured:
        yield captured


def answer(status: int = 200, *, after: float = 0.0) -> Callable[[Any], Any]:
    async def call_next(request: Any) -> Any:
        await asyncio.sleep(after)
        return Response(status)

    return call_next


def fail(error: BaseException) -> Callable[[Any], Any]:
    async def call_next(request: Any) -> Any:
        raise error

    return call_next


def request(**changes: Any) -> Request:
    return get("users/{id}", path_parameters={"id": "p4th"}, query_parameters={"token": "t0ken"}).replace(
        endpoint=ENDPOINT, **changes
    )


def test_without_structlog_constructing_fails_with_the_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "structlog", None)
    for cls in (ClientLog, ServerLog):
        with pytest.raises(ImportError, match=r"pip install 'aio-pipeline\[structlog\]'"):
            cls()


# --- the client: one event per call ---------------------------------------------------------


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_call_is_logged_once_with_its_fields(logs: list[dict[str, Any]]) -> None:
    log = ClientLog(every_call=True)
    deadline = Deadline.from_timeout(3)
    await log(request(deadline=deadline, priority=Priority.HIGH), answer(201, after=0.5))
    assert logs == [
        {
            "event": "aio_pipeline.client.call",
            "log_level": "info",
            "method": "GET",
            "endpoint": "http://127.0.0.1:8080",
            "route": "users/{id}",
            "deadline_remaining": 3.0,
            "priority": "high",
            "status": 201,
            "duration": 0.5,
        }
    ]


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_inherited_deadline_and_priority_are_logged_when_the_call_has_none(
    logs: list[dict[str, Any]],
) -> None:
    with set_context(deadline=Deadline.from_timeout(2), priority=Priority.LOW):
        await ClientLog()(request(deadline=Deadline.from_timeout(9)), answer(404))
    assert (logs[0]["deadline_remaining"], logs[0]["priority"]) == (2.0, "low")


@extras
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("error", "name", "level"),
    [
        (DeadlineExceededError("late"), "DeadlineExceededError", "warning"),
        (CircuitOpenError("open", retry_after=1), "CircuitOpenError", "warning"),
        (ValueError("http://u:secret@h/?token=secret"), "ValueError", "warning"),
    ],
)
async def test_a_failed_call_logs_the_error_class_never_its_message(
    logs: list[dict[str, Any]], error: Exception, name: str, level: str
) -> None:
    with pytest.raises(type(error)):
        await ClientLog()(request(), fail(error))
    [entry] = logs
    assert (entry["error"], entry["log_level"]) == (name, level)
    assert "status" not in entry and "secret" not in repr(logs)


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_cancelled_call_is_logged_once(logs: list[dict[str, Any]]) -> None:
    task = asyncio.create_task(ClientLog()(request(), answer(after=10)))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [(e["event"], e["error"], e["log_level"], e["duration"]) for e in logs] == [
        ("aio_pipeline.client.call", "cancelled", "info", 1.0)
    ]


@extras
@pytest.mark.asyncio
async def test_headers_are_logged_only_when_asked_and_secrets_are_redacted(logs: list[dict[str, Any]]) -> None:
    secrets = {"Authorization": "Bearer s", "Cookie": "c=s", "proxy-authorization": "s", "X-Token": "s", "Accept": "a"}
    await ClientLog(every_call=True)(request().update_headers(secrets), answer())
    await ClientLog(every_call=True, log_headers=True, deny_headers=["x-token"])(
        request().update_headers(secrets), answer()
    )
    assert "headers" not in logs[0]
    assert logs[1]["headers"] == {
        "Authorization": "[redacted]",
        "Cookie": "[redacted]",
        "proxy-authorization": "[redacted]",
        "X-Token": "[redacted]",
        "Accept": "a",
    }
    assert "t0ken" not in repr(logs) and "p4th" not in repr(logs)  # neither query nor path values


# --- the client: strategy events and breaker changes ----------------------------------------


def attempt(number: int = 1, kind: str = "first") -> Request:
    return request(attempt=number, attempt_kind=kind, priority=Priority.NORMAL)


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_strategy_events_are_logged_and_the_call_says_which_attempt_answered(
    logs: list[dict[str, Any]],
) -> None:
    log = ClientLog(log_attempts=True)
    hook = log.client_event_hook()

    async def two_attempts(call: Request) -> Response:
        loop = asyncio.get_running_loop()
        first = call.replace(attempt=1, attempt_kind="first", deadline=Deadline.from_timeout(4))
        hook(AttemptStarted(first, loop.time()))
        await asyncio.sleep(0.25)
        hook(AttemptFinished(first, 0.25, Response(503), None))
        hook(RetryScheduled(first, 2, 0.1))
        second = call.replace(attempt=2, attempt_kind="retry", deadline=first.deadline)
        hook(AttemptStarted(second, loop.time()))
        hook(AttemptFinished(second, 0.0, None, None, cancelled=True))
        return Response(200, request=second)  # as a transport makes it: the attempt it answers

    await log(request(), two_attempts)
    first, scheduled, second, call = logs
    assert first == {
        "event": "aio_pipeline.client.attempt",
        "log_level": "debug",
        "method": "GET",
        "endpoint": "http://127.0.0.1:8080",
        "route": "users/{id}",
        "attempt": 1,
        "attempt_kind": "first",
        "status": 503,
        "duration": 0.25,
        "deadline_remaining": 4.0,  # when the attempt started; no priority: left out
    }
    assert (scheduled["event"], scheduled["next_attempt"], scheduled["delay"]) == (
        "aio_pipeline.client.retry_scheduled",
        2,
        0.1,
    )
    assert (second["attempt_kind"], second["error"]) == ("retry", "cancelled")
    # Answered by its second attempt: logged although a 200, with the deadline it was sent with.
    assert (call["event"], call["attempts"], call["status"], call["log_level"]) == (
        "aio_pipeline.client.call",
        2,
        200,
        "info",
    )
    assert call["deadline_remaining"] == 4.0


@extras
@pytest.mark.asyncio
async def test_a_call_that_went_well_costs_no_log_line_by_default(logs: list[dict[str, Any]]) -> None:
    log = ClientLog()
    sent = request()
    for status in (200, 204, 301):
        assert (await log(sent, answer(status))).status == status
    assert logs == []
    await log(sent, answer(404))
    await log(sent, answer(503))
    assert [(e["status"], e["log_level"]) for e in logs] == [(404, "info"), (503, "warning")]


@extras
def test_attempt_events_are_asked_for_only_when_they_are_logged() -> None:
    quiet, chatty = ClientLog().client_event_hook(), ClientLog(log_attempts=True).client_event_hook()
    assert not wants(quiet, AttemptStarted) and not wants(quiet, AttemptFinished)
    assert wants(quiet, RetryScheduled) and wants(quiet, BudgetExhausted) and wants(quiet, HedgeStarted)
    assert wants(chatty, AttemptStarted) and wants(chatty, AttemptFinished)


@extras
def test_without_log_attempts_a_finished_attempt_is_not_logged(logs: list[dict[str, Any]]) -> None:
    ClientLog().client_event_hook()(AttemptFinished(attempt(), 0.1, Response(503), None))
    assert logs == []


@extras
def test_hedges_budget_and_retry_after_are_logged(logs: list[dict[str, Any]]) -> None:
    hook = ClientLog().client_event_hook()
    hook(HedgeStarted(attempt(2, "hedge"), 0.2))
    hook(BudgetExhausted(attempt(3, "hedge"), 3, "hedge"))
    hook(RetryAfterHonoured(attempt(), 2.0, 2.0))
    hook(RetryAfterGaveUp(attempt(), 60.0, 5.0))
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("aio_pipeline.client.hedge_started", "info"),
        ("aio_pipeline.client.retry_budget_exhausted", "warning"),
        ("aio_pipeline.client.retry_after", "info"),
        ("aio_pipeline.client.retry_after", "info"),
    ]
    hedge, budget, honoured, gave_up = logs
    assert (hedge["attempt"], hedge["attempt_kind"], hedge["after"]) == (2, "hedge", 0.2)
    assert (budget["attempt"], budget["kind"]) == (3, "hedge")
    assert (honoured["retry_after"], honoured["delay"]) == (2.0, 2.0)
    assert (gave_up["retry_after"], gave_up["limit"]) == (60.0, 5.0)


@extras
def test_breaker_changes_are_logged_once_even_when_subscribed_twice(logs: list[dict[str, Any]]) -> None:
    now = [0.0]
    breaker: DefaultCircuitBreaker[str, Any] = DefaultCircuitBreaker(
        break_duration=5, failure_threshold=0.5, minimum_throughput=1, sampling_duration=10, clock=lambda: now[0]
    )
    breaker.subscribe(ClientLog().circuit_breaker_hook())
    breaker.subscribe(ClientLog().circuit_breaker_hook())  # a second client sharing the breaker
    breaker.acquire("http://a:80").failure()
    now[0] = 5.0
    assert breaker.state["http://a:80"] is CircuitState.HALF_OPEN
    assert [(e["event"], e["log_level"], e["old"], e["new"], e["reason"]) for e in logs] == [
        ("aio_pipeline.circuit_breaker.state_changed", "warning", "closed", "open", "failure_ratio"),
        ("aio_pipeline.circuit_breaker.state_changed", "info", "open", "half_open", "break_elapsed"),
    ]
    assert logs[0]["endpoint"] == "http://a:80"


@extras
def test_a_breaker_hook_accepts_any_key(logs: list[dict[str, Any]]) -> None:
    ClientLog().circuit_breaker_hook()(CircuitStateChanged(("svc", 1), CircuitState.CLOSED, CircuitState.OPEN, 1.0))
    assert logs[0]["endpoint"] == "('svc', 1)"


# --- the server -----------------------------------------------------------------------------


def inbound(route: str | None = "/users/{id}", path: str = "/users/42", **headers: str) -> SimpleNamespace:
    resource = None if route is None else SimpleNamespace(canonical=route)
    return SimpleNamespace(
        method="GET",
        path=path,
        headers={name.replace("_", "-"): value for name, value in headers.items()},
        match_info=SimpleNamespace(route=SimpleNamespace(resource=resource)),
    )


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_access_log_and_the_values_bound_for_the_handler(logs: list[dict[str, Any]]) -> None:
    import structlog

    seen: dict[str, Any] = {}

    async def handler(request: Any) -> Any:
        seen.update(structlog.contextvars.get_contextvars())
        await asyncio.sleep(0.2)
        return Response(204)

    headers = {"X-Request-Timeout": "2.5", "X-Request-Priority": "HIGH", "X-Service-Name": "checkout"}
    structlog.contextvars.bind_contextvars(app="kept")
    try:
        await ServerLog()(inbound(**{k.replace("-", "_"): v for k, v in headers.items()}), handler)
        after = structlog.contextvars.get_contextvars()
    finally:
        structlog.contextvars.clear_contextvars()
    assert seen == {"app": "kept", "client": "checkout", "priority": "high", "deadline_remaining": 2.5}
    assert after == {"app": "kept"}  # unbound when the request ends, the rest untouched
    assert logs == [
        {
            "event": "aio_pipeline.server.request",
            "log_level": "info",
            "method": "GET",
            "route": "/users/{id}",
            "client": "checkout",
            "priority": "high",
            "deadline_remaining": 2.5,
            "path": "/users/42",
            "status": 204,
            "duration": 0.2,
        }
    ]


@extras
@pytest.mark.asyncio
@pytest.mark.looptime
async def test_inside_the_deadline_middleware_the_resolved_values_are_bound(logs: list[dict[str, Any]]) -> None:
    import structlog

    seen: dict[str, Any] = {}

    async def handler(request: Any) -> Any:
        seen.update(structlog.contextvars.get_contextvars())
        return Response(200)

    with set_context(deadline=Deadline.from_timeout(20), priority=Priority.NORMAL):
        await ServerLog()(inbound(), handler)
    assert seen == {"client": "unknown", "priority": "normal", "deadline_remaining": 20.0}


@extras
@pytest.mark.asyncio
async def test_refused_requests_are_logged_as_warnings_with_the_reason(logs: list[dict[str, Any]]) -> None:
    # Driven directly (no adapter), ServerLog logs what it saw, with aiohttp's rule for errors.
    import aiohttp
    from aiohttp import web

    log = ServerLog()
    expired, shed, timed_out, spent = inbound(), inbound(), inbound(), inbound()
    with pytest.raises(DeadlineRejectedError):  # ServerDeadline's refusal: the handler never ran
        await log(expired, fail(DeadlineRejectedError("expired", request=expired)))
    with pytest.raises(OverloadedError):
        await log(shed, fail(OverloadedError("busy", request=shed)))
    with pytest.raises(DeadlineExceededError):  # cancelled at its deadline: it ran, so not refused
        await log(timed_out, fail(DeadlineExceededError("cancelled", request=timed_out)))
    with pytest.raises(DeadlineExceededError):  # an outbound call ran out: answered 408, not refused
        await log(spent, fail(DeadlineExceededError("late", request=get("x"))))
    with pytest.raises(web.HTTPNotFound):
        await log(inbound(None, "/wp-admin"), fail(web.HTTPNotFound()))
    with pytest.raises(RuntimeError):
        await log(inbound(), fail(RuntimeError("boom")))
    with pytest.raises(TimeoutError):
        await log(inbound(), fail(TimeoutError()))
    outbound_404 = aiohttp.ClientResponseError(None, (), status=404)  # type: ignore[arg-type]
    with pytest.raises(aiohttp.ClientResponseError):
        await log(inbound(), fail(outbound_404))
    assert [(e["status"], e.get("rejected"), e["error"], e["log_level"], e["route"]) for e in logs] == [
        (408, "deadline", "DeadlineRejectedError", "warning", "/users/{id}"),
        (503, "overloaded", "OverloadedError", "warning", "/users/{id}"),
        (408, None, "DeadlineExceededError", "warning", "/users/{id}"),
        (408, None, "DeadlineExceededError", "warning", "/users/{id}"),
        (404, None, "HTTPNotFound", "info", "unmatched"),
        (500, None, "RuntimeError", "warning", "/users/{id}"),
        (504, None, "TimeoutError", "warning", "/users/{id}"),  # aiohttp answers a TimeoutError 504
        (500, None, "ClientResponseError", "warning", "/users/{id}"),  # its 404 is not what was sent
    ]


@extras
@pytest.mark.asyncio
async def test_server_headers_are_redacted_and_the_client_header_is_configurable(logs: list[dict[str, Any]]) -> None:
    log = ServerLog(log_headers=True, deny_headers=["X-Api-Key"], client_header_name="X-Caller")
    headers = {"Authorization": "Basic s", "Set-Cookie": "s", "X-Api-Key": "s", "X-Caller": "orders", "Accept": "a"}
    request = inbound()
    request.headers = headers
    await log(request, answer())
    assert logs[0]["headers"] == {
        "Authorization": "[redacted]",
        "Set-Cookie": "[redacted]",
        "X-Api-Key": "[redacted]",
        "X-Caller": "orders",
        "Accept": "a",
    }
    assert logs[0]["client"] == "orders"


@extras
@pytest.mark.asyncio
async def test_a_failing_renderer_never_fails_the_call(caplog: pytest.LogCaptureFixture) -> None:
    testing = pytest.importorskip("structlog.testing")

    def broken(logger: Any, method: str, event: Any) -> Any:
        raise TypeError("not serialisable")

    with testing.capture_logs(processors=[broken]):
        assert (await ClientLog(every_call=True)(request(), answer(204))).status == 204
        assert (await ServerLog()(inbound(), answer(204))).status == 204
    assert [record.getMessage() for record in caplog.records] == [
        "structlog failed to log aio_pipeline.client.call",
        "structlog failed to log aio_pipeline.server.request",
    ]
