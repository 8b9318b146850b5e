"""The system headers, written for each attempt right before the transport.

``SystemHeaders`` is the last middleware of a client pipeline. It writes what the callee needs
to know from the attempt it receives (retry and hedging hand each attempt its own deadline,
attempt number and priority through ``request.replace``):

    X-Request-Timeout    the time left of ``request.deadline``, computed now, e.g. ``4.9873``
    X-Request-Priority   ``request.priority``: ``high``, ``normal`` or ``low``
    X-Request-Attempt    ``request.attempt``: 1, 2, ...

Being last, it runs after every user middleware, so the timeout never overstates the time left
when the request leaves.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import ClassVar

from aio_pipeline.chain import Handler
from aio_pipeline.http import Headers, Request, Response
from aio_pipeline.propagation import ATTEMPT_HEADER, PRIORITY_HEADER, TIMEOUT_HEADER, Priority, timeout_header_value

__all__ = ["SystemHeaders", "system_headers"]

#: A priority as sent (a dict look-up: ``.value`` on an Enum member costs a call's worth).
_WIRE_PRIORITY = {priority: priority.value for priority in Priority}


def system_headers(request: Request) -> Headers:
    """``request``'s headers with the system headers written from its fields, now.

    A caller's own values for the three names are dropped: the callee must see the real
    deadline, not a value someone typed. The timeout is written only when the request has a
    deadline, the priority only when it has one; the attempt always.
    """
    deadline, priority = request.deadline, request.priority
    return request.headers.replaced(
        {
            TIMEOUT_HEADER: None if deadline is None else timeout_header_value(deadline),
            PRIORITY_HEADER: None if priority is None else _WIRE_PRIORITY[priority],
            ATTEMPT_HEADER: str(request.attempt),
        }
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemHeaders:
    """Writes ``X-Request-Timeout``, ``X-Request-Priority`` and ``X-Request-Attempt``.

    Options:
        emit_system_headers: write the three headers (overwriting any caller value); ``False``
            writes none and leaves the caller's headers as they are; default ``True``.
    """

    #: writes the deadline and priority on the wire (``checked_middlewares``)
    is_wire_writer: ClassVar[bool] = True

    emit_system_headers: bool = True

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``): a plain function handing on
        ``call_next``'s awaitable, so no frame of its own stays on the call's stack."""
        if not self.emit_system_headers:
            return call_next

        def with_system_headers(request: Request) -> Awaitable[Response]:
            return call_next(request.replace(headers=system_headers(request)))

        return with_system_headers

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)
