"""The conformance check: one middleware against the rules aio-pipeline's own middlewares keep.

    check_middleware(add_auth_token)              # AssertionError naming every rule it breaks
    report = conformance_report(add_auth_token)   # the same as a ConformanceReport, to inspect

A client middleware runs at the attempt level of a standard pipeline, where a strategy calls it
once per attempt, between the two probes that watch it (``_observe``)::

    ClientDeadline -> ClientPriority -> strategy -> [probe] -> the middleware -> [probe]
        -> SystemHeaders -> FakeTransport

and goes through these scenarios, in this order, on one instance (seconds from the start of each):

    plain              one attempt; the transport answers 200 at once
    retry              SequentialStrategy: three attempts 0.1 s apart, each answered 200 (the
                       strategy rejects all but the last, so the middleware sees the same each time)
    concurrent         three calls at once, each answered after 0.1 s
    hedge              ParallelStrategy: attempt 1 is answered after 1 s; the hedge starts at 0.1 s
                       and is answered at once, and the race cancels attempt 1
    cancelled          the transport never answers; the caller cancels the call at 0.5 s
    cancelled-holding  the call is cancelled just as call_next hands the middleware its response
    deadline           a 3 s call split among three attempts (1 s each); the first attempt's
                       transport never answers, so its deadline cuts it at 1 s
    error              the transport raises ConnectError
    bug-below          the transport raises RuntimeError

A server middleware runs inside the standard server steps, over a scripted handler, with
requests made by ``aiohttp.test_utils.make_mocked_request`` (no socket)::

    ServerDeadline(cancel_on_timeout=True) -> ServerPriority -> [probe] -> the middleware
        -> [probe] -> handler

through ``plain``, ``again`` (three requests one after another), ``concurrent`` (three at once,
each handled in 0.1 s), ``cancelled`` (the handler never answers; the request is cancelled at
0.5 s, as when a client goes away), ``deadline`` (``X-Request-Timeout: 1``, a handler that never
answers), and a handler raising ``ConnectError``, ``web.HTTPServiceUnavailable`` and
``RuntimeError``. A server response holds no connection, so ``Rule.RESPONSES_CLOSED`` does not
apply there.

What a finding means is in its words; two findings by design rather than by defect: a middleware
that limits concurrency on purpose (a bulkhead below three calls) is reported as making calls wait
for one another, and one that maps errors on purpose must say which (``maps_errors``).

Time is virtual: the check runs on an event loop of its own whose clock jumps to the next timer
(``_clock``), so its scenarios take a few milliseconds of real time and every time it reports is
exact. The functions are plain functions, called the same way from sync and async tests: from
an async test (a loop already running in this thread) the check runs its loop on a thread of its
own and this thread waits for it, its own loop paused meanwhile. Waiting, rather than returning
an awaitable, keeps one event loop running at a time, so the clocks of the caller's loop and the
check's never meet (the library remembers the last running loop's clock process-wide). The
check's code inherits a copy of the caller's contextvars, but no deadline or priority
(``detached()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import itertools
import threading
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._client import Pipeline
from ..chain import compose
from ..errors import ConnectError
from ..http import Headers, Request, Response
from ..middlewares.deadline import ClientDeadline, ServerDeadline
from ..middlewares.hedging import ParallelStrategy
from ..middlewares.priority import ClientPriority, ServerPriority
from ..middlewares.retry import SequentialStrategy, split_deadline_between_attempts
from ..middlewares.strategy import SingleAttempt
from ..middlewares.wire import SystemHeaders
from ..policy import ResponseClassifier, ResponseVerdict, constant_delays
from ..propagation import Deadline, detached, get_context
from ._clock import VirtualClockLoop
from ._fake import FakeTransport, fail, hang, respond
from ._observe import Inner, Invocation, Observer, Outer, freeze
from ._report import ConformanceReport, Finding, Rule

__all__ = ["check_middleware", "check_server_middleware", "conformance_report", "server_conformance_report"]

#: Virtual seconds: rounding in the clock's jumps, never a real delay.
_EPSILON = 1e-6
#: Virtual seconds a scenario may run before the check cancels it (every deadline in it is shorter).
_WATCHDOG = 60.0
#: Virtual seconds a cancelled call (or a task left behind) gets to end before it is abandoned.
_GRACE = 10.0
#: The call deadline of every client scenario but ``deadline``, seconds.
_CALL_TIMEOUT = 5.0
#: The request extension (client) or request item (server) naming the invocation a request is for.
_TAG = "aio_pipeline.testing.invocation"
#: Where the check's client requests go: nowhere, the transport is scripted.
_ENDPOINT = "http://127.0.0.1:1/"


def conformance_report(
    middleware: Callable[..., Awaitable[Any]],
    *,
    request: Request | None = None,
    maps_errors: Iterable[type[BaseException]] = (),
) -> ConformanceReport:
    """Run the client ``middleware`` through the check's scenarios and report every rule it breaks.

    See the module for the scenarios. It never raises for a broken rule; ``check_middleware``
    does.

    Options:
        middleware: the client middleware checked, ``(request, call_next) -> response``;
            required.
        request: the request each scenario sends, as a caller would build it. Scenarios that
            retry or hedge send it marked ``retryable`` when its method is not idempotent; its
            ``deadline``, if any, is left out (each scenario gives the call its own); default
            ``None``: a GET of ``items/{id}`` with a path parameter, a query, a header and a
            caller's extension holding a list.
        maps_errors: exception types from ``call_next`` the middleware means to map (to an
            exception of its own, or to a response); any other must come out as it went in;
            default none.
    """
    if not callable(middleware):
        raise ValueError(f"middleware must be a callable (request, call_next), got {middleware!r}")
    base = _default_request() if request is None else request
    if not isinstance(base, Request):
        raise ValueError(f"request must be an aio_pipeline.Request, got {type(base).__name__}")
    if base.deadline is not None:  # made on another loop's clock; each scenario sets its own
        base = base.replace(deadline=None)
    check = _Check(_ClientSide(), middleware, _mapped(maps_errors))
    check.scenarios = _client_scenarios(middleware, base, check.observer)
    return _run(check)


def check_middleware(
    middleware: Callable[..., Awaitable[Any]],
    *,
    request: Request | None = None,
    maps_errors: Iterable[type[BaseException]] = (),
) -> None:
    """Raise ``AssertionError`` listing every rule the client ``middleware`` breaks, in plain words.

    Options:
        middleware: the client middleware checked; required.
        request: the request each scenario sends; default ``None``: the check's own (see
            ``conformance_report``).
        maps_errors: exception types from ``call_next`` the middleware means to map; default none.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    report = conformance_report(middleware, request=request, maps_errors=maps_errors)
    if not report.ok:
        raise AssertionError(str(report))


def server_conformance_report(
    middleware: Callable[..., Awaitable[Any]], *, maps_errors: Iterable[type[BaseException]] = ()
) -> ConformanceReport:
    """Run the server ``middleware`` through the server scenarios and report every rule it breaks.

    See the module for the scenarios. It never raises for a broken rule;
    ``check_server_middleware`` does.

    Options:
        middleware: the server middleware checked, ``(request, call_next) -> response``;
            required.
        maps_errors: exception types from ``call_next`` the middleware means to map (to an
            exception of its own, or to a response); any other must come out as it went in;
            default none.
    """
    if not callable(middleware):
        raise ValueError(f"middleware must be a callable (request, call_next), got {middleware!r}")
    check = _Check(_ServerSide(), middleware, _mapped(maps_errors))
    check.scenarios = _server_scenarios(middleware, check.observer)
    return _run(check)


def check_server_middleware(
    middleware: Callable[..., Awaitable[Any]], *, maps_errors: Iterable[type[BaseException]] = ()
) -> None:
    """Raise ``AssertionError`` listing every rule the server ``middleware`` breaks.

    Options:
        middleware: the server middleware checked; required.
        maps_errors: exception types from ``call_next`` the middleware means to map; default none.
    """
    __tracebackhide__ = True
    report = server_conformance_report(middleware, maps_errors=maps_errors)
    if not report.ok:
        raise AssertionError(str(report))


def _mapped(maps_errors: Iterable[type[BaseException]]) -> tuple[type[BaseException], ...]:
    mapped = tuple(maps_errors)
    for kind in mapped:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise ValueError(f"maps_errors must hold exception types, got {kind!r}")
    return mapped


def _default_request() -> Request:
    return Request(
        method="GET",
        url="items/{id}",
        endpoint=_ENDPOINT,
        path_parameters={"id": "7"},  # a dict of the caller's, as they usually are
        query_parameters=(("page", "2"),),
        headers=Headers({"Accept": "application/json"}),
        extensions={"caller.notes": ["the caller's own list"]},
    )


# --- the two sides ------------------------------------------------------------------------------


class _ClientSide:
    name = "client"
    not_applicable: tuple[Rule, ...] = ()

    def tagged(self, request: Any, number: int) -> Any:
        return request.with_extension(_TAG, number) if isinstance(request, Request) else request

    def tag_of(self, request: Any) -> int | None:
        tag = request.extensions.get(_TAG) if isinstance(request, Request) else None
        return tag if isinstance(tag, int) else None

    def snapshot(self, request: Any) -> dict[str, object]:
        fields = getattr(request, "__dict__", None)
        if isinstance(fields, dict):
            return {str(name): freeze(value) for name, value in fields.items()}
        return {"request": freeze(request)}

    def deadline_at(self, request: Any) -> float | None:
        deadline = getattr(request, "deadline", None)
        return deadline.deadline_at if isinstance(deadline, Deadline) else None

    def is_response(self, value: object) -> bool:
        return isinstance(value, Response)

    def is_open(self, response: object) -> bool:
        return isinstance(response, Response) and not response.closed

    async def close(self, response: object) -> None:
        if isinstance(response, Response):
            with contextlib.suppress(Exception):  # a failing close is not what this check is about
                await response.close()


class _ServerSide:
    name = "server"
    not_applicable: tuple[Rule, ...] = (Rule.RESPONSES_CLOSED,)

    def tagged(self, request: Any, number: int) -> Any:
        with contextlib.suppress(TypeError):  # aiohttp's own per-request storage; clones copy it
            request[_TAG] = number
        return request

    def tag_of(self, request: Any) -> int | None:
        try:
            tag = request.get(_TAG)
        except (AttributeError, TypeError):
            return None
        return tag if isinstance(tag, int) else None

    def snapshot(self, request: Any) -> dict[str, object]:
        # The request's own storage (request["key"]) is aiohttp's place for per-request state: not
        # part of it. What the caller sent is.
        return {
            "method": freeze(getattr(request, "method", None)),
            "url": freeze(str(getattr(request, "rel_url", ""))),
            "headers": freeze(getattr(request, "headers", None)),
            "match_info": freeze(dict(getattr(request, "match_info", None) or {})),
        }

    def deadline_at(self, request: Any) -> float | None:
        deadline = get_context().deadline
        return None if deadline is None else deadline.deadline_at

    def is_response(self, value: object) -> bool:
        from aiohttp import web

        return isinstance(value, web.StreamResponse)

    def is_open(self, response: object) -> bool:
        return False

    async def close(self, response: object) -> None:
        pass


_Side = _ClientSide | _ServerSide


# --- scenarios ----------------------------------------------------------------------------------


@dataclass
class _Scenario:
    name: str
    handler: Callable[[Any], Awaitable[Any]]
    requests: Callable[[], list[Any]]  # made when the scenario runs, on the check's loop
    one_by_one: bool = False  # else all at once
    cancel_after: float | None = None
    cancel_on_response: bool = False
    transport: FakeTransport | None = None


class _RejectEvery(ResponseClassifier):
    """Rejects every response: a ``SequentialStrategy`` then sends every attempt it may."""

    __slots__ = ()

    def classify(self, response: Response) -> ResponseVerdict:
        return ResponseVerdict.REJECT


def _client_scenarios(middleware: Any, base: Request, observer: Observer) -> list[_Scenario]:
    repeatable = base if base.is_idempotent else base.replace(retryable=True)
    scenarios: list[_Scenario] = []

    def add(
        name: str,
        strategy: Any,
        transport: FakeTransport,
        request: Request,
        *,
        calls: int = 1,
        timeout: float = _CALL_TIMEOUT,
        cancel_after: float | None = None,
        cancel_on_response: bool = False,
    ) -> None:
        pipeline = Pipeline(
            transport,
            [
                ClientDeadline(timeout=timeout),
                ClientPriority(),
                strategy,
                Outer(observer),
                middleware,
                Inner(observer),
                SystemHeaders(),
            ],
        )
        scenarios.append(
            _Scenario(
                name,
                pipeline,
                lambda: [request] * calls,
                cancel_after=cancel_after,
                cancel_on_response=cancel_on_response,
                transport=transport,
            )
        )

    retry = SequentialStrategy(attempts_count=3, delays_provider=constant_delays(delay=0.1), classifier=_RejectEvery())
    hedge = ParallelStrategy(attempts_count=2, delays_provider=constant_delays(delay=0.1))
    split = SequentialStrategy(
        attempts_count=3,
        delays_provider=constant_delays(delay=0.0),
        deadline_provider=split_deadline_between_attempts(),
    )
    add("plain", SingleAttempt(), FakeTransport(otherwise=respond(200, body=b"plain")), base)
    add("retry", retry, FakeTransport(otherwise=respond(200)), repeatable)
    add("concurrent", SingleAttempt(), FakeTransport(otherwise=respond(200, delay=0.1)), base, calls=3)
    add("hedge", hedge, FakeTransport([respond(200, delay=1.0)], otherwise=respond(200)), repeatable)
    add("cancelled", SingleAttempt(), FakeTransport(otherwise=hang()), base, cancel_after=0.5)
    add("cancelled-holding", SingleAttempt(), FakeTransport(otherwise=respond(200)), base, cancel_on_response=True)
    add("deadline", split, FakeTransport([hang()], otherwise=respond(200)), repeatable, timeout=3.0)
    add("error", SingleAttempt(), FakeTransport(otherwise=fail(ConnectError)), base)
    add("bug-below", SingleAttempt(), FakeTransport(otherwise=fail(RuntimeError)), base)
    return scenarios


def _server_scenarios(middleware: Any, observer: Observer) -> list[_Scenario]:
    from aiohttp import web
    from aiohttp.test_utils import make_mocked_request

    def requests(count: int = 1, timeout: str = "5") -> Callable[[], list[Any]]:
        headers = {"X-Request-Timeout": timeout, "X-Request-Priority": "normal", "X-Service-Name": "check"}
        return lambda: [make_mocked_request("GET", "/items/7?page=2", headers=headers) for _ in range(count)]

    def stack(handler: Callable[[Any], Awaitable[Any]]) -> Callable[[Any], Awaitable[Any]]:
        steps = [ServerDeadline(cancel_on_timeout=True), ServerPriority(), Outer(observer), middleware, Inner(observer)]
        return compose(steps, handler)

    def answer(delay: float = 0.0) -> Callable[[Any], Awaitable[Any]]:
        async def handler(request: Any) -> web.StreamResponse:
            if delay:
                await asyncio.sleep(delay)
            return web.Response(text="handled")

        return handler

    def raising(make: Callable[[], BaseException]) -> Callable[[Any], Awaitable[Any]]:
        async def handler(request: Any) -> web.StreamResponse:
            raise make()

        return handler

    async def never(request: Any) -> web.StreamResponse:
        await asyncio.get_running_loop().create_future()
        raise AssertionError("unreachable: the future is never completed")

    return [
        _Scenario("plain", stack(answer()), requests()),
        _Scenario("again", stack(answer()), requests(3), one_by_one=True),
        _Scenario("concurrent", stack(answer(0.1)), requests(3)),
        _Scenario("cancelled", stack(never), requests(), cancel_after=0.5),
        _Scenario("deadline", stack(never), requests(timeout="1")),
        _Scenario("error", stack(raising(lambda: ConnectError("an outgoing call failed"))), requests()),
        _Scenario("http-error", stack(raising(web.HTTPServiceUnavailable)), requests()),
        _Scenario("bug-below", stack(raising(lambda: RuntimeError("a bug below"))), requests()),
    ]


#: How a scenario's further calls of the middleware came about, for the findings.
_AGAIN = {
    "retry": "again for the same call (a retry)",
    "again": "again, for a later request",
    "concurrent": "concurrently with other calls",
    "hedge": "concurrently for the same call (a hedge)",
}


# --- running and judging ------------------------------------------------------------------------


class _Check:
    """One run of the check: the scenarios, in order, and the findings they produce."""

    def __init__(self, side: _Side, middleware: Any, maps_errors: tuple[type[BaseException], ...]) -> None:
        self.side = side
        self.middleware = middleware
        self.maps_errors = maps_errors
        self.observer = Observer(side)
        self.scenarios: list[_Scenario] = []
        self.findings: list[Finding] = []
        self._kinds: set[tuple[Rule, str, str]] = set()  # (rule, scenario, kind) already found
        self._plain_ok = False
        self._plain_lag: float | None = None  # seconds from being called to calling call_next

    def report(self) -> ConformanceReport:
        name = getattr(self.middleware, "__qualname__", None) or type(self.middleware).__qualname__
        return ConformanceReport(str(name), self.side.name, tuple(self.findings), self.side.not_applicable)

    async def run(self) -> ConformanceReport:
        with detached():
            for scenario in self.scenarios:
                await self._run(scenario)
        return self.report()

    async def _run(self, scenario: _Scenario) -> None:
        loop = asyncio.get_running_loop()
        this = asyncio.current_task()
        self.observer.start(cancel_on_response=scenario.cancel_on_response)
        before = asyncio.all_tasks()
        started = loop.time()
        requests = scenario.requests()
        calls: list[asyncio.Task[Any]] = []
        unstoppable: list[asyncio.Task[Any]] = []
        for group in [[request] for request in requests] if scenario.one_by_one else [requests]:
            tasks = [loop.create_task(_call(scenario.handler, request)) for request in group]
            calls.extend(tasks)
            timer = None
            if scenario.cancel_after is not None:
                timer = loop.call_later(scenario.cancel_after, _cancel, tasks)
            _, pending = await asyncio.wait(tasks, timeout=_WATCHDOG)
            if timer is not None:
                timer.cancel()
            if pending:  # past every deadline: the findings say why; cancel it and go on
                _cancel(pending)
                _, still = await asyncio.wait(pending, timeout=_GRACE)
                unstoppable.extend(still)
        # The check is the caller: it closes what it got back, and what the middleware returned.
        for call in calls:
            if call.done() and not call.cancelled() and call.exception() is None:
                await self.side.close(call.result())
        for invocation in self.observer.invocations:
            if invocation.response is not None:
                await self.side.close(invocation.response)
        ours = {this, *calls}
        leftovers = [
            task for task in asyncio.all_tasks() if task not in before and task not in ours and not task.done()
        ]
        self._judge(scenario, started, leftovers, unstoppable)
        if leftovers:
            _cancel(leftovers)
            await asyncio.wait(leftovers, timeout=_GRACE)
        if scenario.transport is not None:
            for response in scenario.transport.responses:
                await self.side.close(response)
        for task in self.observer.tasks:
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a failure in a task left behind is reported, not logged

    def _find(self, rule: Rule, scenario: _Scenario, message: str, kind: str | None = None) -> None:
        """Note a finding, once per ``kind`` of finding (default: its message) in a scenario: the
        first of several calls of the middleware that broke the rule the same way says it."""
        key = (rule, scenario.name, message if kind is None else kind)
        if key not in self._kinds:
            self._kinds.add(key)
            self.findings.append(Finding(rule, scenario.name, message))

    def _judge(
        self,
        scenario: _Scenario,
        started: float,
        leftovers: list[asyncio.Task[Any]],
        unstoppable: list[asyncio.Task[Any]],
    ) -> None:
        invocations = self.observer.invocations
        for invocation in invocations:
            self._judge_invocation(scenario, started, invocation)
        reported = {task for invocation in invocations for task in invocation.open_tasks}
        unreported = [task for task in leftovers if task not in reported]
        if unreported and not unstoppable:  # a call that will not end holds tasks of the stack too
            self._find(
                Rule.CANCELLATION,
                scenario,
                f"{_tasks(unreported)} started during the call {_were(unreported)} still running after it ended",
            )
        for call in self.observer.stray:
            self._find(
                Rule.CANCELLATION,
                scenario,
                f"call_next was called at {call.at - started:.3f} s, after the call of the middleware it belongs to "
                "had ended (from a task left behind?)",
                "stray",
            )
        if unstoppable:
            self._find(
                Rule.CANCELLATION,
                scenario,
                f"the call was still running {_WATCHDOG:.0f} s in and did not end when cancelled: it swallows "
                "cancellations",
            )
        self._judge_scenario(scenario, started)

    def _judge_invocation(self, scenario: _Scenario, started: float, invocation: Invocation) -> None:
        def at(moment: float) -> str:
            return f"{moment - started:.3f} s"

        ended = _how_it_ended(invocation, self.side)
        # does not mutate the request it was given
        for change in invocation.changed[:1]:  # where it was first seen
            self._find(Rule.REQUEST_UNCHANGED, scenario, f"the request it was given was changed: {change}", "changed")
        # lets cancellation through and leaves no task behind
        if invocation.swallowed:
            self._find(
                Rule.CANCELLATION,
                scenario,
                f"it swallowed a cancellation: its task was cancelled while it ran (by its caller, a deadline or its "
                f"own code), and it {ended} instead of letting the cancellation through or taking it back with "
                "uncancel()",
                "swallowed",
            )
        if invocation.open_tasks:
            self._find(
                Rule.CANCELLATION,
                scenario,
                f"it left {_tasks(invocation.open_tasks)} it started running when it {ended}",
                "left tasks",
            )
        if invocation.open_calls:
            self._find(
                Rule.CANCELLATION,
                scenario,
                f"it {ended} while its call_next was still running: it left it behind instead of cancelling it",
                "left call_next",
            )
        cut = [call.ended_at for call in invocation.calls if isinstance(call.error, asyncio.CancelledError)]
        if invocation.cancelled and invocation.ended_at is not None and cut:
            late = invocation.ended_at - max(at for at in cut if at is not None)
            if late > _EPSILON:
                self._find(
                    Rule.CANCELLATION,
                    scenario,
                    f"it let the cancellation through only {late:.3f} s after its call_next had been cancelled",
                    "late",
                )
        # closes every response it does not return
        for call in invocation.calls:
            if call.response is not invocation.response and self.side.is_open(call.response):
                self._find(
                    Rule.RESPONSES_CLOSED,
                    scenario,
                    f"it {ended} but did not close the response ({_status(call.response)}) its call_next gave it",
                    "not closed",
                )
        # never outlives the deadline
        deadline = invocation.deadline_at
        if deadline is not None:
            if invocation.ended_at is None:
                self._find(
                    Rule.DEADLINE,
                    scenario,
                    f"it had not ended {_WATCHDOG:.0f} s after it was called, though its deadline was at "
                    f"{at(deadline)}",
                    "late",
                )
            elif invocation.ended_at > deadline + _EPSILON:
                self._find(
                    Rule.DEADLINE,
                    scenario,
                    f"it {ended} at {at(invocation.ended_at)}, {invocation.ended_at - deadline:.3f} s past the "
                    f"deadline it was given ({at(deadline)})",
                    "late",
                )
            for call in invocation.calls:
                if call.deadline_at is None:
                    self._find(
                        Rule.DEADLINE, scenario, "it passed the request on without the deadline it was given", "later"
                    )
                elif call.deadline_at > deadline + _EPSILON:
                    self._find(
                        Rule.DEADLINE,
                        scenario,
                        f"it passed on a deadline {call.deadline_at - deadline:.3f} s later than the one it was given",
                        "later",
                    )
        # passes contextvars through
        if any(not call.saw_caller for call in invocation.calls):
            self._find(
                Rule.CONTEXTVARS,
                scenario,
                "its call_next did not see the caller's contextvars: it ran call_next in a context of its own",
            )
        # works when called several times and concurrently: no call sends another's request
        for call in invocation.calls:
            if call.sent_for is not None:
                self._find(
                    Rule.REPEATABLE,
                    scenario,
                    "one call of it sent the request another call had given it: state shared between calls",
                )
        self._judge_exceptions(scenario, invocation, ended)

    def _judge_exceptions(self, scenario: _Scenario, invocation: Invocation, ended: str) -> None:
        errors = [
            call.error
            for call in invocation.calls
            if call.error is not None and not isinstance(call.error, asyncio.CancelledError)
        ]
        kept = [error for error in errors if not isinstance(error, self.maps_errors)]
        if not kept:
            return
        raised = invocation.error
        if raised is not None and not isinstance(raised, asyncio.CancelledError):
            if any(raised is error for error in errors):
                return
            if isinstance(raised, BaseExceptionGroup) and any(_holds(raised, error) for error in kept):
                self._find(
                    Rule.EXCEPTIONS_KEPT,
                    scenario,
                    f"it wrapped the {type(kept[-1]).__name__} call_next raised in {type(raised).__name__}",
                    "wrapped",
                )
                return
            self._find(
                Rule.EXCEPTIONS_KEPT,
                scenario,
                f"it raised {_error(raised)} where call_next raised {type(kept[-1]).__name__}",
                "replaced",
            )
        elif invocation.ended_at is not None and raised is None:
            answered = any(call.response is not None for call in invocation.calls)
            if not answered:
                self._find(
                    Rule.EXCEPTIONS_KEPT,
                    scenario,
                    f"it {ended} where call_next raised {type(kept[-1]).__name__}: the error was swallowed",
                    "swallowed",
                )

    def _judge_scenario(self, scenario: _Scenario, started: float) -> None:
        invocations = self.observer.invocations
        failed = [
            invocation
            for invocation in invocations
            if invocation.ended_at is not None
            and (
                (invocation.error is not None and not invocation.cancelled and _own_error(invocation))
                or (invocation.error is None and not self.side.is_response(invocation.response))
            )
        ]
        if scenario.name == "plain":
            self._plain_ok = bool(invocations) and not failed
            for invocation in failed:
                self._find(
                    Rule.REPEATABLE,
                    scenario,
                    f"a plain call failed: it {_how_it_ended(invocation, self.side, detail=True)}",
                    "failed",
                )
            first = invocations[0] if invocations else None
            if first is not None and first.calls:
                self._plain_lag = first.calls[0].at - first.entered_at
            return
        if scenario.name not in _AGAIN or not self._plain_ok:
            return
        for invocation in failed:
            self._find(
                Rule.REPEATABLE,
                scenario,
                f"called {_AGAIN[scenario.name]}, it {_how_it_ended(invocation, self.side, detail=True)}",
                "failed",
            )
        if scenario.name in ("concurrent", "hedge") and self._plain_lag is not None:
            for invocation in invocations:
                if not invocation.calls:
                    continue
                lag = invocation.calls[0].at - invocation.entered_at
                if lag > self._plain_lag + _EPSILON:
                    self._find(
                        Rule.REPEATABLE,
                        scenario,
                        f"called {_AGAIN[scenario.name]}, it waited {lag:.3f} s before calling call_next (a plain "
                        f"call waits {self._plain_lag:.3f} s): calls wait for one another (a lock held across "
                        "call_next?)",
                        "waited",
                    )
        if scenario.name == "retry" and scenario.transport is not None:
            sent = [sent.request for sent in scenario.transport.sent]
            for name in sorted({name.lower() for request in sent for name in request.headers}):
                counts = [len(request.headers.getall(name, [])) for request in sent]
                if len(counts) >= 3 and all(later > earlier for earlier, later in itertools.pairwise(counts)):
                    self._find(
                        Rule.REPEATABLE,
                        scenario,
                        f"the {name} header piles up from one attempt to the next (sent {counts} times): state kept "
                        "between calls",
                    )


async def _call(handler: Callable[[Any], Awaitable[Any]], request: Any) -> Any:
    return await handler(request)


def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()


def _own_error(invocation: Invocation) -> bool:
    """Whether the invocation raised an error none of its call_next calls did."""
    return not any(call.error is not None for call in invocation.calls)


def _holds(group: BaseExceptionGroup[Any], error: BaseException) -> bool:
    return any(
        inner is error or (isinstance(inner, BaseExceptionGroup) and _holds(inner, error)) for inner in group.exceptions
    )


def _how_it_ended(invocation: Invocation, side: _Side, *, detail: bool = False) -> str:
    """How an invocation ended, in words; an error with its message when ``detail``."""
    if invocation.ended_at is None:
        return "had not ended"
    if invocation.cancelled:
        return "was cancelled"
    if invocation.error is not None:
        return f"raised {_error(invocation.error) if detail else type(invocation.error).__name__}"
    if side.is_response(invocation.response):
        return f"returned a response ({_status(invocation.response)})"
    return f"returned {invocation.response!r} (not a response)"


def _error(error: BaseException) -> str:
    message = str(error)
    return f"{type(error).__name__}({message[:60]!r})" if message else type(error).__name__


def _status(response: object) -> str:
    return str(getattr(response, "status", "?"))


def _tasks(tasks: list[asyncio.Task[Any]]) -> str:
    names = ", ".join(sorted({_task_name(task) for task in tasks}))
    return f"{len(tasks)} task{'s' if len(tasks) > 1 else ''} ({names})"


def _task_name(task: asyncio.Task[Any]) -> str:
    name = getattr(task.get_coro(), "__qualname__", None)
    if name == Inner.__call__.__qualname__:  # the probe is where the rest of the stack begins
        return "call_next"
    return str(name or task.get_name())


def _were(tasks: list[asyncio.Task[Any]]) -> str:
    return "were" if len(tasks) > 1 else "was"


# --- the check's own loop ------------------------------------------------------------------------


def _run(check: _Check) -> ConformanceReport:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        running = False
    else:
        running = True
    if not running:  # outside the except block: no exception of the check's chains to its RuntimeError
        return _run_on_own_loop(check)
    # Called from a running loop (an async test): run on a thread of our own and wait for it here,
    # so that one loop runs at a time (see the module docstring).
    reports: list[ConformanceReport] = []
    failures: list[BaseException] = []
    context = contextvars.copy_context()

    def work() -> None:
        try:
            reports.append(context.run(_run_on_own_loop, check))
        except BaseException as error:  # handed to the caller's thread as it is
            failures.append(error)

    thread = threading.Thread(target=work, name="aio_pipeline conformance check", daemon=True)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
    return reports[0]


#: Tasks of a middleware that would not end even when cancelled again and again, kept for the life
#: of the process: a coroutine dropped while suspended is closed by the garbage collector, outside
#: its task, where code meant to run in it fails (resetting a contextvar in a ``finally``) and is
#: reported as an unraisable exception in whatever test runs then. The check has reported the
#: middleware as broken already; this only keeps the rest of a test run quiet.
_UNSTOPPABLE: list[asyncio.Task[Any]] = []


def _run_on_own_loop(check: _Check) -> ConformanceReport:
    loop = VirtualClockLoop()
    loop.set_task_factory(check.observer.task_factory)
    try:
        return loop.run_until_complete(check.run())
    finally:
        try:
            left = asyncio.all_tasks(loop)
            if left:  # what a middleware left behind and the scenarios could not stop
                _cancel(left)
                loop.run_until_complete(asyncio.wait(left, timeout=_GRACE))
                for task in left:
                    if task.done() and not task.cancelled():
                        task.exception()  # retrieved: its failure was reported, not logged again
                unstoppable = [task for task in left if not task.done()]
                if unstoppable:
                    _UNSTOPPABLE.extend(unstoppable)
                    loop.set_exception_handler(_quiet_about(unstoppable))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def _quiet_about(tasks: list[asyncio.Task[Any]]) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """The loop's exception handler, silent about ``tasks`` (pending when destroyed, at exit)."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not any(context.get("task") is task for task in tasks):
            loop.default_exception_handler(context)

    return handle
