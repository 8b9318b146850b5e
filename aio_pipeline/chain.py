"""The whole framework in two type names and one function (``link`` is its one step).

A ``Handler`` takes a request and returns a response. A ``Middleware`` takes a request and
``call_next`` (the rest of the chain) and returns a response; it may change the request (by
copy), short-circuit, call ``call_next`` several times, or wrap the response. ``compose`` folds
middlewares around a handler, first one outermost. Both are generic, so the server side uses
them with its own request and response types.

A middleware object may also offer ``link(call_next) -> Handler``: the handler with
``call_next`` bound once, as tower's ``Layer`` wraps a service. ``compose`` uses it when there
is one, so that a call goes straight into the middleware's own code instead of through a small
function that passes ``call_next`` along on every request; the library's middlewares do this.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias, TypeVar

__all__ = ["Handler", "Middleware", "checked_middlewares", "compose", "link"]

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")

Handler: TypeAlias = Callable[[RequestT], Awaitable[ResponseT]]
Middleware: TypeAlias = Callable[[RequestT, Handler[RequestT, ResponseT]], Awaitable[ResponseT]]


def compose(
    middlewares: Iterable[Middleware[RequestT, ResponseT]], handler: Handler[RequestT, ResponseT]
) -> Handler[RequestT, ResponseT]:
    """Fold ``middlewares`` around ``handler``; the first middleware is the outermost.

    The chain is built once. Each link calls its middleware directly (no extra task, no
    extra coroutine), so contextvars and cancellation flow through untouched.
    """
    for middleware in reversed(list(middlewares)):
        handler = link(middleware, handler)
    return handler


def link(
    middleware: Middleware[RequestT, ResponseT], call_next: Handler[RequestT, ResponseT]
) -> Handler[RequestT, ResponseT]:
    """``middleware`` with ``call_next`` bound: its own ``link(call_next)`` if it has one, else a
    small function passing ``call_next`` along."""
    own = getattr(middleware, "link", None)
    if callable(own):
        linked: Handler[RequestT, ResponseT] = own(call_next)
        return linked
    return lambda request: middleware(request, call_next)


def checked_middlewares(
    middlewares: Iterable[Middleware[RequestT, ResponseT]], option: str = "middlewares"
) -> tuple[Middleware[RequestT, ResponseT], ...]:
    """``middlewares`` as a tuple, checked when a stack is built rather than at its first call.

    Each must be callable; and a step that resolves something the callee must be told (a class
    attribute ``needs_wire_writer = True``: ``ClientDeadline``, ``ClientPriority``) needs a
    step after it that writes it on the wire (``is_wire_writer = True``: ``SystemHeaders``).
    Without one the deadline and priority stay local, silently; a stack meant to keep them local
    says so with ``SystemHeaders(emit_system_headers=False)``. ``ValueError`` names ``option``.
    """
    stack = tuple(middlewares)
    waiting: object = None  # the first step still waiting for a writer after it
    for middleware in stack:
        if not callable(middleware):
            raise ValueError(f"{option} must be callables (request, call_next), got {middleware!r}")
        if getattr(middleware, "is_wire_writer", False):
            waiting = None
        elif waiting is None and getattr(middleware, "needs_wire_writer", False):
            waiting = middleware
    if waiting is not None:
        raise ValueError(
            f"{option} has {type(waiting).__name__} but nothing after it writes the deadline and priority"
            " on the wire: add SystemHeaders() last (or SystemHeaders(emit_system_headers=False)"
            " to keep them local)"
        )
    return stack
