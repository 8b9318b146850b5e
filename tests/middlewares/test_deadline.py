"""Deadlines, client and server side: resolution, fail-fast, enforcement, the header rules.

Time is virtual (looptime): sleeps take no real time and ``loop.time()`` starts at 0.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aio_pipeline import (
    Deadline,
    DeadlineExceededError,
    Handler,
    Headers,
    Pipeline,
    Priority,
    RejectedError,
    Request,
    Response,
    get,
)
from aio_pipeline.middlewares import SystemHeaders
from aio_pipeline.middlewares.deadline import (
    ClientDeadline,
    DeadlineRejectedError,
    ServerDeadline,
    earliest,
    inbound_timeout,
)
from aio_pipeline.propagation import Context, get_context, inherited_deadline, set_context
from aio_pipeline.testing import FakeTransport

URL = "http://service.test/thing"


def now() -> float:
    return asyncio.get_running_loop().time()


async def slow_ok(request: Request) -> Response:
    await asyncio.sleep(3600)
    return Response(200)


# --- client: which deadline ---------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_call_with_no_deadline_anywhere_gets_the_default_timeout() -> None:
    transport = FakeTransport([Response(200)])
    await Pipeline(transport, [ClientDeadline(timeout=7), SystemHeaders()])(get(URL))
    [sent] = transport.sent
    assert sent.timeout == pytest.approx(7)
    assert sent.request.deadline == Deadline(7.0)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_default_default_is_twenty_seconds() -> None:
    transport = FakeTransport([Response(200)])
    await Pipeline(transport, [ClientDeadline(), SystemHeaders()])(get(URL))
    assert transport.sent[0].timeout == pytest.approx(20)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_inherited_deadline_bounds_a_call_without_an_explicit_one() -> None:
    transport = FakeTransport([Response(200)])
    with set_context(deadline=Deadline.from_timeout(4)):
        await Pipeline(transport, [ClientDeadline(), SystemHeaders()])(get(URL))
    assert transport.sent[0].timeout == pytest.approx(4)


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize(
    ("explicit", "inherited", "expected"),
    [(30, 0.5, 0.5), (1, 10, 1), (None, 3, 3), (3, None, 3)],
)
async def test_the_earlier_of_explicit_and_inherited_wins(
    explicit: float | None, inherited: float | None, expected: float
) -> None:
    transport = FakeTransport([Response(200)])
    request = get(URL).replace(deadline=Deadline.from_timeout(explicit) if explicit is not None else None)
    with set_context(deadline=Deadline.from_timeout(inherited) if inherited is not None else None):
        await Pipeline(transport, [ClientDeadline(), SystemHeaders()])(request)
    assert transport.sent[0].timeout == pytest.approx(expected)


def test_earliest_ignores_none() -> None:
    late, early = Deadline(5.0), Deadline(2.0)
    assert earliest(late, early) is early
    assert earliest(early, late) is early
    assert earliest(None, late) is late
    assert earliest(late, None) is late
    assert earliest(None, None) is None


# --- client: fail fast --------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_an_expired_inherited_deadline_fails_without_touching_the_network() -> None:
    transport = FakeTransport([Response(200)])
    deadline = Deadline.from_timeout(1)
    await asyncio.sleep(2)
    with set_context(deadline=deadline), pytest.raises(DeadlineExceededError, match="already passed") as caught:
        await Pipeline(transport, [ClientDeadline(), SystemHeaders()])(get(URL))
    assert transport.sent == []
    assert isinstance(caught.value.request, Request)


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize(("left", "threshold", "sent"), [(0.004, 0.005, False), (0.006, 0.005, True), (0.001, 0, True)])
async def test_less_time_than_the_threshold_fails_fast(left: float, threshold: float, sent: bool) -> None:
    transport = FakeTransport([Response(200)])
    pipeline = Pipeline(transport, [ClientDeadline(low_timeout_threshold=threshold), SystemHeaders()])
    request = get(URL).replace(deadline=Deadline.from_timeout(left))
    if sent:
        await pipeline(request)
    else:
        with pytest.raises(DeadlineExceededError, match="threshold"):
            await pipeline(request)
    assert len(transport.sent) == int(sent)


# --- client: the whole call is bounded ----------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_time_spent_in_inner_middlewares_counts_against_the_deadline() -> None:
    async def slow_middleware(request: Request, call_next: Handler[Request, Response], /) -> Response:
        await asyncio.sleep(10)  # endpoint resolution, a token fetch, a wait between attempts...
        return await call_next(request)

    transport = FakeTransport([Response(200)])
    pipeline = Pipeline(transport, [ClientDeadline(), slow_middleware, SystemHeaders()])
    with pytest.raises(DeadlineExceededError, match="deadline passed"):
        await pipeline(get(URL).replace(deadline=Deadline.from_timeout(1)))
    assert now() == pytest.approx(1)
    assert transport.sent == []


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_attempts_and_waits_between_them_share_the_one_deadline() -> None:
    seen: list[Deadline | None] = []

    async def twice(request: Request, call_next: Handler[Request, Response], /) -> Response:
        seen.append(request.deadline)
        await (await call_next(request.replace(attempt=1))).close()
        await asyncio.sleep(0.75)
        seen.append(request.deadline)
        return await call_next(request.replace(attempt=2))

    transport = FakeTransport([Response(503), slow_ok])
    pipeline = Pipeline(transport, [ClientDeadline(), twice, SystemHeaders()])
    with pytest.raises(DeadlineExceededError):
        await pipeline(get(URL).replace(deadline=Deadline.from_timeout(2)))
    assert now() == pytest.approx(2)
    assert seen == [Deadline(2.0), Deadline(2.0)]  # resolved once, the same for every attempt
    assert [s.timeout for s in transport.sent] == [pytest.approx(2), pytest.approx(1.25)]


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_another_timeout_error_is_not_renamed() -> None:
    async def database(request: Request, call_next: Handler[Request, Response], /) -> Response:
        raise TimeoutError("the token store timed out")

    pipeline = Pipeline(FakeTransport(), [ClientDeadline(), database, SystemHeaders()])
    with pytest.raises(TimeoutError, match="token store") as caught:
        await pipeline(get(URL))
    assert not isinstance(caught.value, DeadlineExceededError)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_deadline_error_from_inside_passes_through_as_is() -> None:
    error = DeadlineExceededError("transport gave up")
    pipeline = Pipeline(FakeTransport([error]), [ClientDeadline(), SystemHeaders()])
    with pytest.raises(DeadlineExceededError) as caught:
        await pipeline(get(URL))
    assert caught.value is error


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_cancellation_propagates_and_is_not_a_deadline_error() -> None:
    pipeline = Pipeline(FakeTransport([slow_ok]), [ClientDeadline(timeout=100), SystemHeaders()])

    async def call() -> Response:
        return await pipeline(get(URL))

    task = asyncio.create_task(call())
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert now() == pytest.approx(1)


@pytest.mark.parametrize("name", ["timeout", "low_timeout_threshold"])
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "1"])
def test_bad_client_options_are_refused_naming_the_parameter(name: str, bad: object) -> None:
    with pytest.raises(ValueError, match=name):
        ClientDeadline(**{name: bad})  # type: ignore[arg-type]


def test_a_zero_timeout_is_refused_but_a_zero_threshold_is_allowed() -> None:
    with pytest.raises(ValueError, match="timeout"):
        ClientDeadline(timeout=0)
    assert ClientDeadline(low_timeout_threshold=0).low_timeout_threshold == 0


# --- server: the header rules -------------------------------------------------------------------


@dataclass(frozen=True)
class Inbound:
    """A duck-typed server request: the server middlewares need only case-insensitive headers."""

    headers: Mapping[str, str]


def inbound(timeout: str | None = None) -> Inbound:
    return Inbound(Headers({} if timeout is None else {"x-request-timeout": timeout}))


class Recorder:
    """A handler recording the context it ran with; ``calls`` proves whether it ran at all."""

    def __init__(self, sleep: float = 0.0) -> None:
        self.sleep = sleep
        self.calls = 0
        self.contexts: list[Context] = []
        self.timeout: float | None = None  # seconds left when the handler started
        self.cancelled = False

    async def __call__(self, request: Inbound) -> str:
        self.calls += 1
        context = get_context()
        self.contexts.append(context)
        self.timeout = None if context.deadline is None else context.deadline.timeout
        try:
            await asyncio.sleep(self.sleep)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return "done"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.5", 1.5),
        ("  2.25\t", 2.25),
        ("4.9873", 4.9873),
        ("86400", 86400.0),  # the ceiling: one day
        ("86401", None),  # above it: like an unparsable value
        ("1e9", None),  # above the ceiling
        ("5e-05", 5e-05),  # aio-request's float repr of a spent deadline
        ("0", 0.0),
        ("-0", 0.0),
        ("-1", 0.0),
        ("-inf", None),
        ("", None),
        ("   ", None),
        ("nan", None),
        ("inf", None),
        ("Infinity", None),
        ("1e400", None),  # overflows to inf
        ("soon", None),
        ("1.5s", None),
        (None, None),
    ],
)
def test_inbound_timeout_rules(value: str | None, expected: float | None) -> None:
    assert inbound_timeout(value) == expected


def test_max_timeout_caps_what_a_client_asks_for() -> None:
    assert inbound_timeout("3600", max_timeout=30) == 30
    assert inbound_timeout("3", max_timeout=30) == 3
    assert inbound_timeout("garbage", max_timeout=30) is None  # the default is not the client's
    assert inbound_timeout("-5", max_timeout=30) == 0.0


@given(value=st.one_of(st.text(), st.floats().map(repr), st.floats().map(str), st.integers().map(str)))
def test_any_header_gives_no_deadline_or_a_finite_non_negative_one(value: str) -> None:
    seconds = inbound_timeout(value)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)
    capped = inbound_timeout(value, max_timeout=10)
    assert capped is None or 0 <= capped <= 10


@given(seconds=st.floats(min_value=0, max_value=86_400, allow_nan=False))
def test_a_well_formed_header_is_read_back_exactly(seconds: float) -> None:
    written = f"{seconds:.4f}"  # as clients write it
    assert inbound_timeout(f" {written} ") == float(written)


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("1.5", 1.5),
        (" 3 ", 3.0),
        (None, 20.0),
        ("", 20.0),
        ("garbage", 20.0),
        ("nan", 20.0),
        ("inf", 20.0),
        ("1e9", 20.0),  # above the one-day ceiling
        ("3600", 3600.0),
    ],
)
async def test_the_handler_runs_with_the_deadline_in_its_context(header: str | None, expected: float) -> None:
    handler = Recorder()
    assert await ServerDeadline()(inbound(header), handler) == "done"
    assert handler.timeout == pytest.approx(expected)
    assert get_context() == Context()  # restored once the handler is done


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize("header", ["0", "-1", "-0.5", "0.004", " 0.0049 "])
async def test_an_expired_or_nearly_expired_request_is_refused_before_the_handler(header: str) -> None:
    handler = Recorder()
    with pytest.raises(DeadlineExceededError, match="request refused") as caught:
        await ServerDeadline()(inbound(header), handler)
    assert handler.calls == 0
    assert isinstance(caught.value.request, Inbound)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_zero_threshold_still_refuses_an_expired_request() -> None:
    handler = Recorder()
    await ServerDeadline(low_timeout_threshold=0)(inbound("0.001"), handler)
    with pytest.raises(DeadlineExceededError):
        await ServerDeadline(low_timeout_threshold=0)(inbound("0"), handler)
    assert handler.calls == 1


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_per_handler_default_applies_only_without_a_usable_header() -> None:
    middleware = ServerDeadline(timeout=20, handler_timeout=lambda request: 60.0)
    for header, expected in [(None, 60.0), ("junk", 60.0), ("2", 2.0)]:
        handler = Recorder()
        await middleware(inbound(header), handler)
        assert handler.timeout == pytest.approx(expected), header
    handler = Recorder()
    await ServerDeadline(timeout=9, handler_timeout=lambda request: None)(inbound(), handler)
    assert handler.timeout == pytest.approx(9)


@pytest.mark.asyncio
@pytest.mark.parametrize("seconds", [math.inf, math.nan])
async def test_a_per_handler_default_that_is_no_number_of_seconds_is_refused_naming_handler_timeout(
    seconds: float,
) -> None:
    handler = Recorder()
    with pytest.raises(ValueError, match="handler_timeout"):
        await ServerDeadline(handler_timeout=lambda request: seconds)(inbound(), handler)
    assert handler.calls == 0


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_server_deadline_replaces_the_deadline_and_keeps_the_priority_inherited() -> None:
    handler = Recorder()
    with set_context(deadline=Deadline.from_timeout(60), priority=Priority.LOW):
        await ServerDeadline()(inbound("3"), handler)
        assert get_context().deadline is not None and get_context().deadline.timeout == 60  # restored
    assert handler.timeout == pytest.approx(3)
    assert handler.contexts[0].priority is Priority.LOW


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_server_middlewares_driven_inside_a_call_stay_bounded_by_that_call() -> None:
    # A server stack driven in-process inside a client call (as a test double of a service may
    # be): the handler's own calls inherit the earlier of the request's deadline and the call's.
    seen: list[Deadline | None] = []

    async def handler(request: Inbound) -> str:
        seen.append(inherited_deadline())
        return "done"

    async def in_process(request: Request) -> Response:
        await ServerDeadline()(inbound("30"), handler)
        return Response(200)

    async with Pipeline(FakeTransport([in_process]), [ClientDeadline(timeout=2), SystemHeaders()]) as pipeline:
        assert (await pipeline(get(URL))).status == 200
    assert seen[0] is not None and seen[0].timeout == pytest.approx(2)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_max_timeout_caps_the_header_but_not_the_service_defaults() -> None:
    middleware = ServerDeadline(timeout=20, max_timeout=5)
    for header, expected in [("3600", 5.0), ("3", 3.0), (None, 20.0)]:
        handler = Recorder()
        await middleware(inbound(header), handler)
        assert handler.timeout == pytest.approx(expected), header


# --- server: cancel on timeout ------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_cancel_on_timeout_cancels_the_handler_at_the_deadline() -> None:
    handler = Recorder(sleep=10)
    with pytest.raises(DeadlineExceededError, match="cancelled"):
        await ServerDeadline(cancel_on_timeout=True)(inbound("1"), handler)
    assert handler.cancelled
    assert now() == pytest.approx(1)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_defect_6_a_refusal_is_a_rejection_and_a_handler_cancelled_at_its_deadline_is_not() -> None:
    # Observers tell the two apart by class: a refusal is a RejectedError (refused before any
    # work was done), the cancellation of a handler that ran is a plain DeadlineExceededError.
    middleware = ServerDeadline(cancel_on_timeout=True)
    with pytest.raises(DeadlineRejectedError) as refused:
        await middleware(inbound("0"), Recorder())
    assert isinstance(refused.value, RejectedError) and isinstance(refused.value, DeadlineExceededError)
    assert refused.value.retry_after == 0
    handler = Recorder(sleep=10)
    with pytest.raises(DeadlineExceededError) as cancelled:
        await middleware(inbound("1"), handler)
    assert handler.calls == 1 and handler.cancelled
    assert not isinstance(cancelled.value, RejectedError)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_without_cancel_on_timeout_the_handler_runs_to_completion() -> None:
    handler = Recorder(sleep=10)
    assert await ServerDeadline()(inbound("1"), handler) == "done"
    assert not handler.cancelled
    assert now() == pytest.approx(10)


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_cancel_on_timeout_leaves_the_handlers_own_timeout_errors_alone() -> None:
    async def handler(request: Inbound) -> str:
        raise TimeoutError("the database")

    with pytest.raises(TimeoutError, match="database") as caught:
        await ServerDeadline(cancel_on_timeout=True)(inbound("5"), handler)
    assert not isinstance(caught.value, DeadlineExceededError)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"timeout": 0}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
        ({"max_timeout": 0}, "max_timeout"),
        ({"max_timeout": -3}, "max_timeout"),
        ({"max_timeout": math.nan}, "max_timeout"),
        ({"low_timeout_threshold": -0.1}, "low_timeout_threshold"),
    ],
)
def test_bad_server_options_are_refused_naming_the_parameter(options: dict[str, object], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ServerDeadline(**options)  # type: ignore[arg-type]
