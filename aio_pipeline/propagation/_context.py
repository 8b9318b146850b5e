"""The deadline and priority a task inherits: how a server request bounds the calls it makes.

The server middlewares put the inbound request's deadline and priority here for the handler;
the client middlewares read them for every call the handler makes, so propagation needs no
code in the handler. One ``ContextVar`` holds an immutable ``Context``, so a read is one
look-up and a task started by the handler (``asyncio.create_task`` copies the context) sees
the same values.

    with set_context(deadline=Deadline.from_timeout(2)):   # calls in here get at most 2 s
        ...
    with detached():                                       # background work: no deadline
        asyncio.create_task(refresh_cache())

Server middlewares, which run on every request a server handles, set the request's deadline and
priority in one step, without a context manager object (see ``CONTEXT``).
"""

from __future__ import annotations

import contextvars
import enum
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Literal

from ._deadline import _COVERING, Deadline, DeadlineScope, earliest
from ._priority import Priority

__all__ = ["CONTEXT", "Context", "detached", "get_context", "inherited_deadline", "set_context"]


class _Keep(enum.Enum):
    KEEP = enum.auto()


#: Marks an argument of ``set_context`` that was not given: the inherited value stays.
#: ``None``, by contrast, clears the value.
_KEEP: Final = _Keep.KEEP


@dataclass(frozen=True, slots=True)
class Context:
    """What calls made here inherit: a ``deadline`` and a ``priority``, each possibly ``None``."""

    deadline: Deadline | None = None
    priority: Priority | None = None


_EMPTY = Context()
_CONTEXT: contextvars.ContextVar[Context] = contextvars.ContextVar("aio_pipeline_context", default=_EMPTY)

#: The var behind ``get_context``, for the server middlewares only: they set a request's deadline
#: and priority around the handler in one step, once per request::
#:
#:     token = CONTEXT.set(Context(deadline, priority))
#:     try:
#:         return await call_next(request)
#:     finally:
#:         CONTEXT.reset(token)
#:
#: Unlike ``set_context(deadline=...)`` this leaves the scope of an enclosing call in place
#: (``inherited_deadline`` takes the earlier of the two). A server request runs in a task of its
#: own, so there is none, unless the server was started, or its middlewares are driven, inside a
#: call that is still running; then its deadline still bounds what the handler calls, and it is
#: the request's caller's. Everything else overrides with ``set_context``.
CONTEXT: Final = _CONTEXT


def get_context() -> Context:
    """The deadline and priority that calls made from the current task inherit."""
    return _CONTEXT.get()


def inherited_deadline() -> Deadline | None:
    """The deadline a call made here inherits: the context's (the server request's, or
    ``set_context``'s), and, when this code runs inside a call, that call's own (a middleware
    making a call of its own, a redirect hop of the httpx drop-in); the earlier of them."""
    scope = _COVERING.get()
    if scope is not None and scope.live:
        return earliest(_CONTEXT.get().deadline, scope.deadline)
    return _CONTEXT.get().deadline


class set_context:
    """Override the inherited deadline or priority for the code inside ``with``.

    An argument left out keeps the inherited value; ``None`` clears it. The value given
    replaces the inherited one (the enclosing call's deadline included, when used inside a
    call), even when it is later: an override is a deliberate choice,
    whereas a per-call ``deadline=`` can only shorten the inherited deadline. This is also
    how code outside any server request gives its calls a deadline or priority. The previous
    values are restored on exit, exception or cancellation included. Synchronous, so it works
    around ``await`` and around ``asyncio.create_task`` alike; not reentrant.
    """

    __slots__ = ("_covering", "_deadline", "_priority", "_token")

    def __init__(
        self,
        *,
        deadline: Deadline | Literal[_Keep.KEEP] | None = _KEEP,
        priority: Priority | Literal[_Keep.KEEP] | None = _KEEP,
    ) -> None:
        if deadline is not _KEEP and deadline is not None and not isinstance(deadline, Deadline):
            raise TypeError(f"deadline must be a Deadline or None, got {type(deadline).__name__}")
        if priority is not _KEEP and priority is not None and not isinstance(priority, Priority):
            raise TypeError(f"priority must be a Priority or None, got {type(priority).__name__}")
        self._deadline = deadline
        self._priority = priority
        self._token: contextvars.Token[Context] | None = None
        self._covering: contextvars.Token[DeadlineScope | None] | None = None

    def __enter__(self) -> Context:
        # Kept values are read on entry, not at construction, so a context manager made early
        # still overrides what is inherited where it is used.
        current = _CONTEXT.get()
        context = Context(
            deadline=current.deadline if self._deadline is _KEEP else self._deadline,
            priority=current.priority if self._priority is _KEEP else self._priority,
        )
        self._token = _CONTEXT.set(context)
        if self._deadline is not _KEEP:  # the enclosing call's deadline is overridden as well
            self._covering = _COVERING.set(None)
        return context

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._covering is not None:
            _COVERING.reset(self._covering)
            self._covering = None
        if self._token is not None:
            _CONTEXT.reset(self._token)
            self._token = None


def detached() -> set_context:
    """A ``with`` block whose code inherits neither deadline nor priority.

    A task started by a handler copies the handler's context, so without this a background
    job (a cache refresh, a fire-and-forget notification) would be cut short by the deadline
    of the request that happened to start it::

        with aio_pipeline.detached():
            task = asyncio.create_task(refresh_cache())

    Inside, calls get the client's default timeout and priority; give them others with
    ``set_context`` inside the job.
    """
    return set_context(deadline=None, priority=None)
