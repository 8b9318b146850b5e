"""Priority, forwarded from service to service.

``ClientPriority`` gives each call a priority: the explicit one, else the one inherited from the
server request being handled, else a default; an inbound HIGH or LOW is forwarded as is.
``ServerPriority`` reads the caller's ``X-Request-Priority`` and hands it to the handler through
the context, so every call the handler makes inherits it. The header itself is written by the
system-headers middleware, per attempt.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from aio_pipeline.chain import Handler
from aio_pipeline.http import Request, Response
from aio_pipeline.propagation import CONTEXT, PRIORITY_HEADER, Context, InboundRequest, Priority, get_context

__all__ = ["ClientPriority", "ServerPriority"]

InboundT = TypeVar("InboundT", bound=InboundRequest)
ResponseT = TypeVar("ResponseT")


def _check_priority(name: str, value: object) -> None:
    if not isinstance(value, Priority):
        raise ValueError(f"{name} must be a Priority (HIGH, NORMAL or LOW), got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientPriority:
    """Sets ``request.priority``: explicit, else inherited, else ``default``.

    The explicit one is ``Client.request(priority=...)``'s; the inherited one
    ``get_context().priority``, the priority of the server request being handled.

    Options:
        default: the priority of a call with no explicit and no inherited one; default NORMAL.
    """

    #: resolves what the callee must be told: a stack needs ``SystemHeaders`` after it (``checked_middlewares``)
    needs_wire_writer: ClassVar[bool] = True

    default: Priority = Priority.NORMAL

    def __post_init__(self) -> None:
        _check_priority("default", self.default)

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``): a plain function handing on
        ``call_next``'s awaitable, so no frame of its own stays on the call's stack."""
        default = self.default

        def prioritised(request: Request) -> Awaitable[Response]:
            if request.priority is None:
                inherited = get_context().priority
                request = request.replace(priority=inherited if inherited is not None else default)
            return call_next(request)

        return prioritised

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerPriority:
    """The priority of an inbound request, from ``X-Request-Priority``, for the handler.

    The header is read case-insensitively with surrounding whitespace trimmed; an absent or
    unknown value gives ``default``. The handler runs with the priority in the context
    (``get_context().priority``), inherited by every call it makes.

    Options:
        default: the priority of a request that carries none; default NORMAL.
    """

    #: never reads the exchange (``aiohttp_server_middleware``): a stack of such steps opens none
    observes_exchange: ClassVar[bool] = False

    default: Priority = Priority.NORMAL

    def __post_init__(self) -> None:
        _check_priority("default", self.default)

    async def __call__(self, request: InboundT, call_next: Callable[[InboundT], Awaitable[ResponseT]], /) -> ResponseT:
        value = request.headers.get(PRIORITY_HEADER)
        priority = self.default if value is None else Priority.parse(value) or self.default
        # The context's priority replaced, its deadline kept, in one step (see ``CONTEXT``): what
        # set_context(priority=...) does, without the context manager, on every request.
        token = CONTEXT.set(Context(get_context().deadline, priority))
        try:
            return await call_next(request)
        finally:
            CONTEXT.reset(token)
