"""The whole framework in two type names, one function and one class.

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
from types import TracebackType
from typing import TypeAlias, TypeVar

from ._request import Request
from ._response import Response
from ._transport import Transport

__all__ = ["Handler", "Middleware", "Pipeline", "compose", "link"]

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


class Pipeline:
    """Client middlewares stacked over a transport: ``await pipeline(request)``.

    The terminal handler is ``transport.send_request``: the request goes to its ``endpoint``
    within what is left of ``request.deadline`` (no bound when it has none). An expired
    deadline fails with ``DeadlineExceededError`` before touching the network.
    """

    __slots__ = ("_handler", "middlewares", "transport")

    def __init__(self, transport: Transport, middlewares: Iterable[Middleware[Request, Response]] = ()) -> None:
        if not isinstance(transport, Transport):
            raise ValueError(f"transport must be a Transport such as AioHttpTransport(session), got {transport!r}")
        self.transport = transport
        self.middlewares: tuple[Middleware[Request, Response], ...] = tuple(middlewares)
        for middleware in self.middlewares:
            if not callable(middleware):
                raise ValueError(f"middlewares must be callables (request, call_next), got {middleware!r}")
        self._handler = compose(self.middlewares, transport.send_request)

    def __repr__(self) -> str:
        names = [getattr(m, "__qualname__", type(m).__qualname__) for m in self.middlewares]
        return f"Pipeline({' -> '.join([*names, type(self.transport).__qualname__])})"

    def __call__(self, request: Request) -> Awaitable[Response]:
        return self._handler(request)

    async def aclose(self) -> None:
        """Close the transport (which leaves a user's own session open)."""
        await self.transport.aclose()

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
