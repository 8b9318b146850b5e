"""The conformance check catches each rule broken: one deliberately broken middleware (or a few)
per rule, client side and server side, each failing the check on that rule and in the scenarios
that show it. Plus the report's words, the options, and how the check runs from sync and async
tests. The check runs on a virtual clock of its own: every time in a finding is exact.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import pytest
from aiohttp import web

from aio_pipeline import (
    ConnectError,
    Deadline,
    DeadlineExceededError,
    Handler,
    Request,
    Response,
    TransportError,
    post,
    set_context,
)
from aio_pipeline.testing import (
    ConformanceReport,
    Finding,
    Rule,
    check_middleware,
    check_server_middleware,
    conformance_report,
    server_conformance_report,
)

ServerHandler = Handler[web.Request, web.StreamResponse]
EVERY_CLIENT_SCENARIO = [
    "plain",
    "retry",
    "concurrent",
    "hedge",
    "cancelled",
    "cancelled-holding",
    "deadline",
    "error",
    "bug-below",
]
EVERY_SERVER_SCENARIO = ["plain", "again", "concurrent", "cancelled", "deadline", "error", "http-error", "bug-below"]


def findings(report: ConformanceReport, rule: Rule) -> list[tuple[str, str]]:
    return [(finding.scenario, finding.message) for finding in report.findings_for(rule)]


def everywhere(message: str, scenarios: list[str] = EVERY_CLIENT_SCENARIO) -> list[tuple[str, str]]:
    return [(scenario, message) for scenario in scenarios]


# --- a middleware that keeps the rules ---------------------------------------------------------


async def add_tenant(request: Request, call_next: Handler[Request, Response], /) -> Response:
    return await call_next(request.update_headers({"X-Tenant-Id": "acme"}))


def test_a_middleware_that_keeps_the_rules_passes() -> None:
    report = conformance_report(add_tenant)

    assert report == ConformanceReport("add_tenant", "client", ())
    assert report.ok and report.broken == ()
    assert str(report) == "client middleware add_tenant keeps all 7 rules"
    check_middleware(add_tenant)  # does not raise


# --- does not mutate the request it was given --------------------------------------------------


async def signs_in_place(request: Request, call_next: Handler[Request, Response], /) -> Response:
    object.__setattr__(request, "headers", request.headers.update({"X-Signature": "signed"}))
    return await call_next(request)


async def notes_in_the_callers_list(request: Request, call_next: Handler[Request, Response], /) -> Response:
    for value in request.extensions.values():
        if isinstance(value, list):
            value.append("seen by the middleware")
    return await call_next(request)


def test_a_middleware_changing_the_request_in_place_is_caught() -> None:
    report = conformance_report(signs_in_place)

    assert report.broken == (Rule.REQUEST_UNCHANGED,)
    assert findings(report, Rule.REQUEST_UNCHANGED) == everywhere(
        "the request it was given was changed: when it called call_next, its headers had changed in place"
    )


def test_a_middleware_changing_a_container_the_caller_owns_is_caught() -> None:
    report = conformance_report(notes_in_the_callers_list)

    assert report.broken == (Rule.REQUEST_UNCHANGED,)
    assert findings(report, Rule.REQUEST_UNCHANGED) == everywhere(
        "the request it was given was changed: when it called call_next, its extensions had changed in place"
    )


# --- lets cancellation through and leaves no task behind ---------------------------------------


async def answers_when_cancelled(request: Request, call_next: Handler[Request, Response], /) -> Response:
    try:
        return await call_next(request)
    except asyncio.CancelledError:
        return Response(503)


async def audit(request: Request) -> None:
    await asyncio.sleep(1.0)


async def audits_in_the_background(request: Request, call_next: Handler[Request, Response], /) -> Response:
    asyncio.create_task(audit(request))  # noqa: RUF006 -- the defect under test
    return await call_next(request)


async def shields_call_next(request: Request, call_next: Handler[Request, Response], /) -> Response:
    return await asyncio.shield(call_next(request))


async def cleans_up_slowly(request: Request, call_next: Handler[Request, Response], /) -> Response:
    try:
        return await call_next(request)
    except asyncio.CancelledError:
        await asyncio.sleep(1.0)
        raise


def test_a_middleware_swallowing_a_cancellation_is_caught() -> None:
    report = conformance_report(answers_when_cancelled)

    assert report.broken == (Rule.CANCELLATION,)
    assert findings(report, Rule.CANCELLATION) == everywhere(
        "it swallowed a cancellation: its task was cancelled while it ran (by its caller, a deadline or its own "
        "code), and it returned a response (503) instead of letting the cancellation through or taking it back "
        "with uncancel()",
        ["hedge", "cancelled"],  # a losing hedge, and a caller giving up
    )


def test_a_middleware_leaving_a_task_behind_is_caught() -> None:
    report = conformance_report(audits_in_the_background)

    assert report.broken == (Rule.CANCELLATION,)
    assert findings(report, Rule.CANCELLATION) == [
        ("plain", "it left 1 task (audit) it started running when it returned a response (200)"),
        ("retry", "it left 1 task (audit) it started running when it returned a response (200)"),
        ("concurrent", "it left 1 task (audit) it started running when it returned a response (200)"),
        ("hedge", "it left 1 task (audit) it started running when it was cancelled"),
        ("cancelled", "it left 1 task (audit) it started running when it was cancelled"),
        ("cancelled-holding", "it left 1 task (audit) it started running when it returned a response (200)"),
        ("deadline", "it left 1 task (audit) it started running when it raised DeadlineExceededError"),
        ("error", "it left 1 task (audit) it started running when it raised ConnectError"),
        ("bug-below", "it left 1 task (audit) it started running when it raised RuntimeError"),
    ]


def test_a_middleware_shielding_call_next_from_a_cancellation_is_caught() -> None:
    report = conformance_report(shields_call_next)

    assert Rule.CANCELLATION in report.broken
    assert findings(report, Rule.CANCELLATION) == [
        ("hedge", "it left 1 task (call_next) it started running when it was cancelled"),
        ("hedge", "it was cancelled while its call_next was still running: it left it behind instead of cancelling it"),
        ("cancelled", "it left 1 task (call_next) it started running when it was cancelled"),
        (
            "cancelled",
            "it was cancelled while its call_next was still running: it left it behind instead of cancelling it",
        ),
    ]
    # and the response the shielded call_next produced once its caller had gone is lost, open
    assert findings(report, Rule.RESPONSES_CLOSED) == [
        ("cancelled-holding", "it was cancelled but did not close the response (200) its call_next gave it")
    ]


async def prefetches_in_the_background(request: Request, call_next: Handler[Request, Response], /) -> Response:
    asyncio.ensure_future(call_next(request))  # noqa: RUF006 -- the defect under test
    return Response(200, body=b"from the cache")


async def sleeper() -> None:
    await asyncio.sleep(10.0)


async def spawner() -> None:
    asyncio.ensure_future(sleeper())  # noqa: RUF006 -- the defect under test


async def spawns_a_spawner(request: Request, call_next: Handler[Request, Response], /) -> Response:
    asyncio.ensure_future(spawner())  # noqa: RUF006 -- the defect under test
    return await call_next(request)


def test_a_middleware_calling_call_next_after_it_returned_is_caught() -> None:
    report = conformance_report(prefetches_in_the_background)

    assert report.broken == (Rule.CANCELLATION,)
    assert findings(report, Rule.CANCELLATION) == [
        finding
        for scenario in EVERY_CLIENT_SCENARIO
        for finding in [
            (scenario, "it left 1 task (call_next) it started running when it returned a response (200)"),
            (
                scenario,
                "call_next was called at 0.000 s, after the call of the middleware it belongs to had ended (from a "
                "task left behind?)",
            ),
        ]
    ]


def test_a_task_started_by_a_task_it_left_behind_is_caught_when_the_call_ends() -> None:
    report = conformance_report(spawns_a_spawner)

    assert report.broken == (Rule.CANCELLATION,)
    assert findings(report, Rule.CANCELLATION)[:2] == [
        ("plain", "it left 1 task (spawner) it started running when it returned a response (200)"),
        ("plain", "1 task (sleeper) started during the call was still running after it ended"),
    ]
    assert ("concurrent", "3 tasks (sleeper) started during the call were still running after it ended") in findings(
        report, Rule.CANCELLATION
    )


def test_a_middleware_slow_to_let_a_cancellation_through_is_caught() -> None:
    report = conformance_report(cleans_up_slowly)

    assert report.broken == (Rule.CANCELLATION,)
    assert findings(report, Rule.CANCELLATION) == everywhere(
        "it let the cancellation through only 1.000 s after its call_next had been cancelled", ["hedge", "cancelled"]
    )


# --- closes every response it does not return --------------------------------------------------


async def rewraps_the_response(request: Request, call_next: Handler[Request, Response], /) -> Response:
    response = await call_next(request)
    return Response(response.status, response.headers, await response.read())


async def audits_holding_the_response(request: Request, call_next: Handler[Request, Response], /) -> Response:
    response = await call_next(request)
    await asyncio.sleep(0)  # an audit write, say: the call may be cancelled here
    return response


async def rewraps_and_hands_over(request: Request, call_next: Handler[Request, Response], /) -> Response:
    """Returns a new response that owns the original: closing it closes the original."""
    response = await call_next(request)
    return Response(response.status, response.headers, reader=response.read, on_close=response.close)


def test_a_middleware_replacing_a_response_without_closing_it_is_caught() -> None:
    report = conformance_report(rewraps_the_response)

    assert report.broken == (Rule.RESPONSES_CLOSED,)
    assert findings(report, Rule.RESPONSES_CLOSED) == everywhere(
        "it returned a response (200) but did not close the response (200) its call_next gave it",
        ["plain", "retry", "concurrent", "hedge", "cancelled-holding", "deadline"],
    )


def test_a_middleware_cancelled_while_holding_a_response_is_caught() -> None:
    report = conformance_report(audits_holding_the_response)

    assert report.broken == (Rule.RESPONSES_CLOSED,)
    assert findings(report, Rule.RESPONSES_CLOSED) == [
        ("cancelled-holding", "it was cancelled but did not close the response (200) its call_next gave it")
    ]


async def forgets_to_return(request: Request, call_next: Handler[Request, Response], /) -> Response:
    await call_next(request)
    return None  # type: ignore[return-value]  # the defect under test


def test_a_middleware_returning_something_else_than_a_response_is_caught() -> None:
    report = conformance_report(forgets_to_return)

    assert report.broken == (Rule.RESPONSES_CLOSED, Rule.REPEATABLE)
    assert findings(report, Rule.REPEATABLE) == [("plain", "a plain call failed: it returned None (not a response)")]
    assert findings(report, Rule.RESPONSES_CLOSED)[0] == (
        "plain",
        "it returned None (not a response) but did not close the response (200) its call_next gave it",
    )


def test_a_new_response_that_closes_the_original_is_not_a_leak() -> None:
    assert conformance_report(rewraps_and_hands_over).ok


# --- never outlives the deadline ---------------------------------------------------------------


async def rate_limits_by_sleeping(request: Request, call_next: Handler[Request, Response], /) -> Response:
    await asyncio.sleep(2.0)
    return await call_next(request)


async def extends_the_deadline(request: Request, call_next: Handler[Request, Response], /) -> Response:
    return await call_next(request.replace(deadline=Deadline.from_timeout(60.0)))


async def retries_on_its_own(request: Request, call_next: Handler[Request, Response], /) -> Response:
    for _ in range(3):
        try:
            return await call_next(request)
        except (TransportError, DeadlineExceededError):
            await asyncio.sleep(0.5)
    return await call_next(request)


def test_a_middleware_sleeping_past_its_deadline_is_caught() -> None:
    report = conformance_report(rate_limits_by_sleeping)

    assert report.broken == (Rule.DEADLINE,)
    [(scenario, message)] = findings(report, Rule.DEADLINE)
    # The first attempt's deadline is 1 s into a 3 s call; it called call_next at 2 s, and the
    # request was refused there for lack of time.
    assert scenario == "deadline"
    assert message.startswith("it raised ")
    assert message.endswith(" at 2.000 s, 1.000 s past the deadline it was given (1.000 s)")


def test_a_middleware_passing_on_a_later_deadline_is_caught() -> None:
    report = conformance_report(extends_the_deadline)

    assert report.broken == (Rule.DEADLINE,)
    assert findings(report, Rule.DEADLINE) == [
        *everywhere(
            "it passed on a deadline 55.000 s later than the one it was given",  # 60 s instead of the call's 5 s
            ["plain", "retry", "concurrent", "hedge", "cancelled", "cancelled-holding"],
        ),
        # The transport, given 60 s, waited until the call's own deadline cut it: 3 s, not 1 s.
        ("deadline", "it was cancelled at 3.000 s, 2.000 s past the deadline it was given (1.000 s)"),
        ("deadline", "it passed on a deadline 59.000 s later than the one it was given"),
        *everywhere("it passed on a deadline 55.000 s later than the one it was given", ["error", "bug-below"]),
    ]


def test_a_middleware_retrying_past_its_deadline_is_caught() -> None:
    report = conformance_report(retries_on_its_own)

    assert report.broken == (Rule.DEADLINE,)
    [(scenario, message)] = findings(report, Rule.DEADLINE)
    assert scenario == "deadline"
    assert message.endswith(" at 2.500 s, 1.500 s past the deadline it was given (1.000 s)")


# --- passes contextvars through ----------------------------------------------------------------


async def runs_call_next_in_a_fresh_context(request: Request, call_next: Handler[Request, Response], /) -> Response:
    return await asyncio.create_task(call_next(request), context=contextvars.Context())


def test_a_middleware_losing_the_callers_contextvars_is_caught() -> None:
    report = conformance_report(runs_call_next_in_a_fresh_context)

    assert Rule.CONTEXTVARS in report.broken
    assert findings(report, Rule.CONTEXTVARS) == everywhere(
        "its call_next did not see the caller's contextvars: it ran call_next in a context of its own"
    )


# --- works when called several times for one call and concurrently -----------------------------


class OneTimeToken:
    """Spends its token on the first call: the second has none."""

    def __init__(self) -> None:
        self.token: str | None = "secret"

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        if self.token is None:
            raise RuntimeError("token already used")
        token, self.token = self.token, None
        return await call_next(request.update_headers({"Authorization": f"Bearer {token}"}))


class SerialisedByALock:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        async with self.lock:
            return await call_next(request)


class RemembersTheLastRequest:
    def __init__(self) -> None:
        self.request: Request | None = None

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        self.request = request
        await asyncio.sleep(0)  # fetching a token, say: another call comes in meanwhile
        assert self.request is not None
        return await call_next(self.request)


class PilesUpHeaders:
    def __init__(self) -> None:
        self.extra: list[tuple[str, str]] = []

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        self.extra.append(("X-Trace", "on"))
        return await call_next(request.extend_headers(self.extra))


def test_a_middleware_failing_when_called_again_is_caught() -> None:
    report = conformance_report(OneTimeToken())

    assert report.broken == (Rule.REPEATABLE,)
    assert findings(report, Rule.REPEATABLE) == [
        ("retry", "called again for the same call (a retry), it raised RuntimeError('token already used')"),
        ("concurrent", "called concurrently with other calls, it raised RuntimeError('token already used')"),
        ("hedge", "called concurrently for the same call (a hedge), it raised RuntimeError('token already used')"),
    ]


def test_a_middleware_serialising_its_calls_is_caught() -> None:
    report = conformance_report(SerialisedByALock())

    assert report.broken == (Rule.REPEATABLE,)
    assert findings(report, Rule.REPEATABLE) == [
        (
            "concurrent",
            "called concurrently with other calls, it waited 0.100 s before calling call_next (a plain call waits "
            "0.000 s): calls wait for one another (a lock held across call_next?)",
        ),
        (
            "hedge",
            # the hedge, due at 0.1 s, went out only when attempt 1 was answered at 1 s
            "called concurrently for the same call (a hedge), it waited 0.900 s before calling call_next (a plain "
            "call waits 0.000 s): calls wait for one another (a lock held across call_next?)",
        ),
    ]


def test_a_middleware_sending_another_calls_request_is_caught() -> None:
    report = conformance_report(RemembersTheLastRequest())

    assert report.broken == (Rule.REPEATABLE,)
    assert findings(report, Rule.REPEATABLE) == [
        ("concurrent", "one call of it sent the request another call had given it: state shared between calls")
    ]


def test_a_middleware_piling_up_state_from_call_to_call_is_caught() -> None:
    report = conformance_report(PilesUpHeaders())

    assert report.broken == (Rule.REPEATABLE,)
    assert findings(report, Rule.REPEATABLE) == [
        (
            "retry",
            # the plain call before had sent it once
            "the x-trace header piles up from one attempt to the next (sent [2, 3, 4] times): state kept between calls",
        )
    ]


# --- keeps call_next's exceptions as they are unless it means to map them ----------------------


async def wraps_errors(request: Request, call_next: Handler[Request, Response], /) -> Response:
    try:
        return await call_next(request)
    except Exception as error:
        raise RuntimeError("the call failed") from error


async def runs_call_next_in_a_task_group(request: Request, call_next: Handler[Request, Response], /) -> Response:
    async with asyncio.TaskGroup() as group:
        task = group.create_task(call_next(request))
    return task.result()


def test_a_middleware_replacing_call_nexts_exceptions_is_caught() -> None:
    report = conformance_report(wraps_errors)

    assert report.broken == (Rule.EXCEPTIONS_KEPT,)
    assert findings(report, Rule.EXCEPTIONS_KEPT) == [
        ("deadline", "it raised RuntimeError('the call failed') where call_next raised DeadlineExceededError"),
        ("error", "it raised RuntimeError('the call failed') where call_next raised ConnectError"),
        ("bug-below", "it raised RuntimeError('the call failed') where call_next raised RuntimeError"),
    ]


def test_a_middleware_wrapping_call_nexts_exceptions_in_a_group_is_caught() -> None:
    report = conformance_report(runs_call_next_in_a_task_group)

    assert findings(report, Rule.EXCEPTIONS_KEPT) == [
        ("deadline", "it wrapped the DeadlineExceededError call_next raised in ExceptionGroup"),
        ("error", "it wrapped the ConnectError call_next raised in ExceptionGroup"),
        ("bug-below", "it wrapped the RuntimeError call_next raised in ExceptionGroup"),
    ]


def test_a_mapping_the_middleware_declares_is_its_right() -> None:
    mapped = conformance_report(wraps_errors, maps_errors=[ConnectError, DeadlineExceededError, RuntimeError])
    partly = conformance_report(wraps_errors, maps_errors=[ConnectError])

    assert mapped.ok
    assert findings(partly, Rule.EXCEPTIONS_KEPT) == [
        ("deadline", "it raised RuntimeError('the call failed') where call_next raised DeadlineExceededError"),
        ("bug-below", "it raised RuntimeError('the call failed') where call_next raised RuntimeError"),
    ]


async def answers_instead_of_failing(request: Request, call_next: Handler[Request, Response], /) -> Response:
    try:
        return await call_next(request)
    except ConnectError:
        return Response(200, body=b"from the cache")


def test_answering_a_response_in_place_of_an_error_is_swallowing_it_unless_declared() -> None:
    report = conformance_report(answers_instead_of_failing)

    assert report.broken == (Rule.EXCEPTIONS_KEPT,)
    assert findings(report, Rule.EXCEPTIONS_KEPT) == [
        ("error", "it returned a response (200) where call_next raised ConnectError: the error was swallowed")
    ]
    assert conformance_report(answers_instead_of_failing, maps_errors=[ConnectError]).ok


# --- server middlewares ------------------------------------------------------------------------


async def server_answers_when_cancelled(request: web.Request, call_next: ServerHandler, /) -> web.StreamResponse:
    try:
        return await call_next(request)
    except asyncio.CancelledError:
        return web.Response(status=503)


async def server_rewrites_match_info(request: web.Request, call_next: ServerHandler, /) -> web.StreamResponse:
    request.match_info["id"] = "8"
    return await call_next(request)


async def server_extends_the_deadline(request: web.Request, call_next: ServerHandler, /) -> web.StreamResponse:
    with set_context(deadline=Deadline.from_timeout(60.0)):
        return await call_next(request)


async def server_loses_the_context(request: web.Request, call_next: ServerHandler, /) -> web.StreamResponse:
    return await asyncio.create_task(call_next(request), context=contextvars.Context())


async def server_wraps_errors(request: web.Request, call_next: ServerHandler, /) -> web.StreamResponse:
    try:
        return await call_next(request)
    except Exception as error:
        raise web.HTTPInternalServerError() from error


class ServerRemembersTheLastRequest:
    def __init__(self) -> None:
        self.request: web.Request | None = None

    async def __call__(self, request: web.Request, call_next: ServerHandler, /) -> web.StreamResponse:
        self.request = request
        await asyncio.sleep(0)
        assert self.request is not None
        return await call_next(self.request)


async def server_request_log(request: web.Request, call_next: ServerHandler, /) -> web.StreamResponse:
    """Keeps every rule: a clone with one more header for the handler."""
    return await call_next(request.clone(headers={**request.headers, "X-Logged": "yes"}))


def test_a_server_middleware_that_keeps_the_rules_passes() -> None:
    report = server_conformance_report(server_request_log)

    assert report == ConformanceReport("server_request_log", "server", (), (Rule.RESPONSES_CLOSED,))
    assert str(report) == "server middleware server_request_log keeps all 6 rules"


def test_server_middlewares_breaking_each_rule_are_caught() -> None:
    reports = {
        Rule.REQUEST_UNCHANGED: server_conformance_report(server_rewrites_match_info),
        Rule.CANCELLATION: server_conformance_report(server_answers_when_cancelled),
        Rule.DEADLINE: server_conformance_report(server_extends_the_deadline),
        Rule.CONTEXTVARS: server_conformance_report(server_loses_the_context),
        Rule.REPEATABLE: server_conformance_report(ServerRemembersTheLastRequest()),
        Rule.EXCEPTIONS_KEPT: server_conformance_report(server_wraps_errors),
    }

    assert findings(reports[Rule.REQUEST_UNCHANGED], Rule.REQUEST_UNCHANGED) == everywhere(
        "the request it was given was changed: when it called call_next, its match_info had changed in place",
        EVERY_SERVER_SCENARIO,
    )
    assert findings(reports[Rule.CANCELLATION], Rule.CANCELLATION) == everywhere(
        "it swallowed a cancellation: its task was cancelled while it ran (by its caller, a deadline or its own "
        "code), and it returned a response (503) instead of letting the cancellation through or taking it back "
        "with uncancel()",
        ["cancelled", "deadline"],  # a client gone away, and ServerDeadline(cancel_on_timeout=True)
    )
    assert findings(reports[Rule.DEADLINE], Rule.DEADLINE) == [
        *everywhere(
            "it passed on a deadline 55.000 s later than the one it was given",
            ["plain", "again", "concurrent", "cancelled"],
        ),
        ("deadline", "it passed on a deadline 59.000 s later than the one it was given"),
        *everywhere(
            "it passed on a deadline 55.000 s later than the one it was given", ["error", "http-error", "bug-below"]
        ),
    ]
    # A fresh context loses the deadline and priority the handler inherits, too.
    assert reports[Rule.CONTEXTVARS].broken == (Rule.DEADLINE, Rule.CONTEXTVARS)
    assert findings(reports[Rule.CONTEXTVARS], Rule.CONTEXTVARS) == everywhere(
        "its call_next did not see the caller's contextvars: it ran call_next in a context of its own",
        EVERY_SERVER_SCENARIO,
    )
    assert findings(reports[Rule.REPEATABLE], Rule.REPEATABLE) == [
        ("concurrent", "one call of it sent the request another call had given it: state shared between calls")
    ]
    assert findings(reports[Rule.EXCEPTIONS_KEPT], Rule.EXCEPTIONS_KEPT) == [
        ("error", "it raised HTTPInternalServerError('Internal Server Error') where call_next raised ConnectError"),
        (
            "http-error",
            "it raised HTTPInternalServerError('Internal Server Error') where call_next raised HTTPServiceUnavailable",
        ),
        ("bug-below", "it raised HTTPInternalServerError('Internal Server Error') where call_next raised RuntimeError"),
    ]
    for rule, report in reports.items():
        assert rule in report.broken
        assert Rule.RESPONSES_CLOSED not in report.broken  # not applicable on the server


# --- the report, the options, how it runs ------------------------------------------------------


def test_check_middleware_raises_an_assertion_error_naming_every_broken_rule() -> None:
    with pytest.raises(AssertionError) as raised:
        check_middleware(runs_call_next_in_a_fresh_context)

    assert str(raised.value) == "\n".join(
        [
            "client middleware runs_call_next_in_a_fresh_context breaks 2 of 7 rules:",
            "- broken: closes every response it does not return",
            "    [cancelled-holding] it was cancelled but did not close the response (200) its call_next gave it",
            "- broken: passes contextvars through",
            "    [plain, retry, concurrent, hedge, cancelled, cancelled-holding, deadline, error, bug-below] its "
            "call_next did not see the caller's contextvars: it ran call_next in a context of its own",
        ]
    )


def test_check_server_middleware_raises_an_assertion_error() -> None:
    with pytest.raises(AssertionError, match=r"^server middleware server_wraps_errors breaks 1 of 6 rules:\n"):
        check_server_middleware(server_wraps_errors)


async def needs_a_tenant_header(request: Request, call_next: Handler[Request, Response], /) -> Response:
    if "X-Tenant-Id" not in request.headers:
        raise ValueError("no tenant")
    return await call_next(request)


def test_the_request_each_scenario_sends_can_be_given() -> None:
    default = conformance_report(needs_a_tenant_header)
    given = conformance_report(needs_a_tenant_header, request=post("http://127.0.0.1:1/orders", b"{}"))
    with_tenant = conformance_report(
        needs_a_tenant_header, request=post("http://127.0.0.1:1/orders", b"{}", headers={"X-Tenant-Id": "acme"})
    )

    assert findings(default, Rule.REPEATABLE) == [("plain", "a plain call failed: it raised ValueError('no tenant')")]
    assert findings(given, Rule.REPEATABLE) == [("plain", "a plain call failed: it raised ValueError('no tenant')")]
    assert with_tenant.ok  # a POST too: retried and hedged only in the scenarios, marked retryable


def test_findings_and_rules_read_in_plain_words() -> None:
    assert [rule.value for rule in Rule] == [
        "does not mutate the request it was given",
        "lets cancellation through and leaves no task behind",
        "closes every response it does not return",
        "never outlives the deadline",
        "passes contextvars through",
        "works when called several times for one call (retry) and concurrently (hedging)",
        "keeps call_next's exceptions as they are unless it means to map them",
    ]
    finding = Finding(Rule.DEADLINE, "deadline", "it ran late")
    assert str(finding) == "[deadline] it ran late"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"middleware": "not callable"}, "middleware must be a callable"),
        ({"middleware": add_tenant, "request": "GET /"}, "request must be an aio_pipeline.Request"),
        ({"middleware": add_tenant, "maps_errors": [ValueError, "oops"]}, "maps_errors must hold exception types"),
    ],
)
def test_bad_arguments_are_refused_before_anything_runs(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        conformance_report(**arguments)


CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="none")


@pytest.mark.asyncio
async def test_called_from_an_async_test_it_runs_on_a_thread_of_its_own_with_the_callers_contextvars() -> None:
    seen: list[tuple[str, str]] = []

    async def records(request: Request, call_next: Handler[Request, Response], /) -> Response:
        seen.append((threading.current_thread().name, CALLER.get()))
        return await call_next(request)

    CALLER.set("the test")
    report = conformance_report(records)

    assert report.ok
    assert set(seen) == {("aio_pipeline conformance check", "the test")}


def test_called_from_sync_code_it_runs_its_own_loop_in_this_thread() -> None:
    seen: list[str] = []

    async def records(request: Request, call_next: Handler[Request, Response], /) -> Response:
        seen.append(threading.current_thread().name)
        return await call_next(request)

    assert conformance_report(records).ok
    assert set(seen) == {threading.current_thread().name}


def test_it_goes_on_past_a_middleware_that_never_lets_go() -> None:
    async def holds_on_for_ever(request: Request, call_next: Handler[Request, Response], /) -> Response:
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    report = conformance_report(holds_on_for_ever)

    assert report.broken == (Rule.CANCELLATION, Rule.DEADLINE)
    assert findings(report, Rule.CANCELLATION) == everywhere(
        "the call was still running 60 s in and did not end when cancelled: it swallows cancellations"
    )
    assert findings(report, Rule.DEADLINE) == [
        *everywhere(
            "it had not ended 60 s after it was called, though its deadline was at 5.000 s",
            ["plain", "retry", "concurrent", "hedge", "cancelled", "cancelled-holding"],
        ),
        ("deadline", "it had not ended 60 s after it was called, though its deadline was at 1.000 s"),
        *everywhere(
            "it had not ended 60 s after it was called, though its deadline was at 5.000 s", ["error", "bug-below"]
        ),
    ]
