"""What the conformance check sees of a middleware: two probes around it, and a task factory.

The check runs the middleware under test between two probes of its own::

    ... strategy -> Outer probe -> the middleware -> Inner probe -> ... -> transport (or handler)

``Outer`` records each call of the middleware (an ``Invocation``): the request it was given (and a
snapshot of it), its deadline, its task, when it ended and how. ``Inner`` records each
``call_next`` the middleware makes (a ``Call``): which invocation made it, whether the caller's
contextvars came along, the deadline passed on, and what came back. The loop's task factory
records the tasks the middleware's own code starts. The check then judges these records; the
probes never change what flows through them, except for marking the request (a tag naming its
invocation, to tell one call's request from another's).

Which invocation a ``call_next`` belongs to: the one running in the same task (the usual case),
else the one whose contextvars came along (a task the middleware started copies them), else the
one whose tag the request carries. When the tag names another invocation than the one running,
the middleware sent another call's request.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import enum
import itertools
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from multidict import MultiMapping

__all__ = ["Call", "Inner", "Invocation", "Observer", "Outer", "Side", "changes", "freeze"]

#: The value each invocation sets here before calling the middleware; its ``call_next`` must see it.
_CALLER: contextvars.ContextVar[object | None] = contextvars.ContextVar("aio_pipeline.testing.caller", default=None)


class Side(Protocol):
    """What the probes need to know of one side's requests and responses."""

    def tagged(self, request: Any, number: int) -> Any:
        """``request`` marked as invocation ``number``'s."""

    def tag_of(self, request: Any) -> int | None:
        """The invocation ``request`` is marked for, if any."""

    def snapshot(self, request: Any) -> dict[str, object]:
        """What must not change of ``request`` while the middleware has it (``freeze``d values)."""

    def deadline_at(self, request: Any) -> float | None:
        """The deadline (loop time) of ``request`` where the probe runs: its own, or the context's."""


@dataclass(eq=False)
class Call:
    """One ``call_next`` the middleware made, and what came back."""

    request: Any
    task: asyncio.Task[Any] | None
    at: float
    saw_caller: bool  # the caller's contextvars came along
    deadline_at: float | None  # the deadline passed on
    sent_for: int | None = None  # another invocation, whose request this one carried
    ended_at: float | None = None
    response: Any = None
    error: BaseException | None = None


@dataclass(eq=False)
class Invocation:
    """One call of the middleware under test."""

    number: int
    task: asyncio.Task[Any]
    entered_at: float
    cancelling: int  # the task's pending cancellation requests on entry
    deadline_at: float | None
    caller: object = field(default_factory=object)  # the value of ``_CALLER`` its call_next must see
    request: Any = None
    snapshot: dict[str, object] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)  # started by its own code
    inside: dict[asyncio.Task[Any], int] = field(default_factory=dict)  # call_next under way, per task
    changed: list[str] = field(default_factory=list)
    ended_at: float | None = None
    response: Any = None
    error: BaseException | None = None
    swallowed: bool = False  # ended otherwise than cancelled, while a cancellation of it was pending
    open_tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    open_calls: list[Call] = field(default_factory=list)

    @property
    def cancelled(self) -> bool:
        return isinstance(self.error, asyncio.CancelledError)


class Observer:
    """The records of the current scenario, kept by the probes and the task factory."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self.invocations: list[Invocation] = []
        self.stray: list[Call] = []  # call_next made when no call of the middleware was under way
        self.cancel_on_response = False  # cancel the invocation handed the next response
        self.tasks: list[asyncio.Task[Any]] = []  # every task started in the scenario
        self._numbers = itertools.count(1)
        self._by_caller: dict[object, Invocation] = {}
        self._by_number: dict[int, Invocation] = {}
        self._running: dict[asyncio.Task[Any], list[Invocation]] = {}

    def start(self, *, cancel_on_response: bool = False) -> None:
        """Forget the previous scenario's records."""
        self.invocations = []
        self.stray = []
        self.cancel_on_response = cancel_on_response
        self.tasks = []
        self._numbers = itertools.count(1)
        self._by_caller = {}
        self._by_number = {}
        self._running = {}

    def task_factory(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any] | Generator[Any, None, Any],
        **options: Any,
    ) -> asyncio.Task[Any]:
        """The loop's task factory: a plain task (``options`` as ``create_task`` passes them),
        noted as started by the middleware's own code when that is what is running (an
        invocation in this task, not inside its call_next)."""
        task: asyncio.Task[Any] = asyncio.Task(coro, loop=loop, **options)
        self.tasks.append(task)
        parent = asyncio.current_task(loop)
        stack = self._running.get(parent) if parent is not None else None
        if stack and not stack[-1].inside.get(parent, 0):  # type: ignore[arg-type]  # parent is set
            stack[-1].tasks.append(task)
        return task

    def entered(self, request: Any, task: asyncio.Task[Any], now: float) -> Invocation:
        invocation = Invocation(next(self._numbers), task, now, task.cancelling(), self.side.deadline_at(request))
        invocation.request = self.side.tagged(request, invocation.number)
        invocation.snapshot = self.side.snapshot(invocation.request)
        self.invocations.append(invocation)
        self._by_caller[invocation.caller] = invocation
        self._by_number[invocation.number] = invocation
        self._running.setdefault(task, []).append(invocation)
        return invocation

    def ended(
        self, invocation: Invocation, now: float, *, response: Any = None, error: BaseException | None = None
    ) -> None:
        invocation.ended_at = now
        invocation.response = response
        invocation.error = error
        stack = self._running.get(invocation.task, [])
        if invocation in stack:
            stack.remove(invocation)
        invocation.open_tasks = [task for task in invocation.tasks if not task.done()]
        invocation.open_calls = [call for call in invocation.calls if call.ended_at is None]
        changed = changes(invocation.snapshot, self.side.snapshot(invocation.request))
        if changed:
            how = "raised" if error is not None else "returned"
            invocation.changed.append(f"by the time it {how}, {changed}")

    def calling(self, request: Any, task: asyncio.Task[Any] | None, now: float) -> tuple[Call, Invocation | None]:
        """A ``call_next`` starts: its record, and the invocation it belongs to (see the module)."""
        caller = _CALLER.get()
        stack = self._running.get(task) if task is not None else None
        running = stack[-1] if stack else self._by_caller.get(caller) if caller is not None else None
        tag = self.side.tag_of(request)
        tagged = self._by_number.get(tag) if tag is not None else None
        invocation = running or tagged
        call = Call(
            request,
            task,
            now,
            saw_caller=invocation is not None and caller is invocation.caller,
            deadline_at=self.side.deadline_at(request),
        )
        if running is not None and tagged is not None and tagged is not running:
            call.sent_for = tagged.number
        if invocation is None or invocation.ended_at is not None:
            self.stray.append(call)  # the middleware is done: not one of its calls to judge
        else:
            invocation.calls.append(call)
            changed = changes(invocation.snapshot, self.side.snapshot(invocation.request))
            if changed:
                invocation.changed.append(f"when it called call_next, {changed}")
        return call, invocation


class Outer:
    """The probe between the strategy (or the server's deadline step) and the middleware."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    async def __call__(self, request: Any, call_next: Callable[[Any], Awaitable[Any]], /) -> Any:
        observer = self._observer
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        invocation = observer.entered(request, task, loop.time())
        token = _CALLER.set(invocation.caller)
        try:
            response = await call_next(invocation.request)
        except BaseException as error:
            observer.ended(invocation, loop.time(), error=error)
            if isinstance(error, Exception):  # never await while a BaseException (GeneratorExit) goes by
                await self._pending_cancellation(invocation, task)
            raise
        finally:
            _CALLER.reset(token)
        observer.ended(invocation, loop.time(), response=response)
        await self._pending_cancellation(invocation, task)
        return response

    @staticmethod
    async def _pending_cancellation(invocation: Invocation, task: asyncio.Task[Any]) -> None:
        """Whether the middleware swallowed a cancellation of its task: one was requested while it
        ran (``cancelling()`` grew, and nobody took it back with ``uncancel()``), yet it ended
        otherwise. If the cancellation had not reached it yet (it never waited after it was
        requested), it arrives at this ``sleep(0)`` and goes on from here."""
        if task.cancelling() <= invocation.cancelling:
            return
        await asyncio.sleep(0)
        invocation.swallowed = True


class Inner:
    """The probe between the middleware and the rest of the stack: its ``call_next``."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    async def __call__(self, request: Any, call_next: Callable[[Any], Awaitable[Any]], /) -> Any:
        observer = self._observer
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        call, invocation = observer.calling(request, task, loop.time())
        if invocation is not None and invocation.ended_at is not None:
            invocation = None  # a call made after the middleware was done: only recorded
        if invocation is not None and task is not None:
            invocation.inside[task] = invocation.inside.get(task, 0) + 1
        try:
            response = await call_next(request)
        except BaseException as error:
            call.error = error
            raise
        else:
            call.response = response
            if observer.cancel_on_response and invocation is not None:
                observer.cancel_on_response = False
                invocation.task.cancel()  # arrives at the middleware's next wait, response in hand
            return response
        finally:
            call.ended_at = loop.time()
            if invocation is not None and task is not None:
                invocation.inside[task] -= 1


# --- snapshots ---------------------------------------------------------------------------------


def freeze(value: object, depth: int = 0) -> object:
    """A comparable copy of ``value``'s contents: containers (mappings, multidicts, lists,
    tuples, sets) by what they hold, plain values by value, any other object by identity (its
    own state is its own: a budget or a hook changes as it works)."""
    if value is None or isinstance(value, str | bytes | int | float | enum.Enum):
        return value
    if depth > 8:
        return ("object", id(value))
    if isinstance(value, MultiMapping):
        return ("multidict", tuple((key, freeze(item, depth + 1)) for key, item in value.items()))
    if isinstance(value, Mapping):
        return ("mapping", tuple((freeze(key, depth + 1), freeze(item, depth + 1)) for key, item in value.items()))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(freeze(item, depth + 1) for item in value))
    if isinstance(value, set | frozenset):
        return ("set", tuple(sorted(repr(freeze(item, depth + 1)) for item in value)))
    if isinstance(value, bytearray):
        return ("bytearray", bytes(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        params = getattr(type(value), "__dataclass_params__", None)
        if params is not None and params.frozen:  # a value (a Deadline): by its fields
            return (type(value).__name__, id(value), freeze(dataclasses.astuple(value), depth + 1))
    return ("object", id(value))


def changes(before: Mapping[str, object], after: Mapping[str, object]) -> str:
    """What changed between two snapshots, in words (``""``: nothing)."""
    changed = sorted(name for name in before.keys() & after.keys() if before[name] != after[name])
    added = sorted(after.keys() - before.keys())
    removed = sorted(before.keys() - after.keys())
    parts = []
    if changed:
        parts.append(f"its {', '.join(changed)} had changed in place")
    if added:
        parts.append(f"it had gained {', '.join(added)}")
    if removed:
        parts.append(f"it had lost {', '.join(removed)}")
    return "; ".join(parts)
