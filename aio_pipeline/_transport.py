"""``Transport``: the leaf that puts a ``Request`` on the wire.

One interface serves both our pipeline and code written for aio-request: ``send(endpoint,
request, timeout)`` can be called directly, and ``Pipeline`` calls it with the attempt's
endpoint and the seconds left of its deadline.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable
from types import TracebackType
from typing import TYPE_CHECKING

from .http import Request, Response
from .propagation import time_to_send

if TYPE_CHECKING:
    from .observe import MetricsProvider

__all__ = ["Transport"]


class Transport(abc.ABC):
    """Sends one request and returns its response; subclass it for a new HTTP library.

    A transport must: bound the whole attempt (connect, send, body read) by ``timeout`` seconds
    (``None``: no bound) and raise ``DeadlineExceededError`` when it runs out; never retry past
    it; map its library's exceptions to ``TransportError`` and its subclasses; close whatever it
    does not return; and return a ``Response`` that owns its connection until closed.

    ``metrics_provider`` is not used by the transport itself: ``setup()`` takes it from the
    transport when not given one (aio-request's ``AioHttpTransport(session, metrics_provider=)``).
    """

    metrics_provider: MetricsProvider | None = None

    @abc.abstractmethod
    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        """Send ``request`` (a relative URL joins onto ``endpoint``) within ``timeout`` seconds."""

    def send_request(self, request: Request) -> Awaitable[Response]:
        """How ``Pipeline`` sends: ``request`` to its ``endpoint`` within its ``deadline``.

        This one turns the deadline into the seconds left (``DeadlineRejectedError``, a
        ``DeadlineExceededError`` refused before sending, when none are) and calls ``send``,
        aio-request's interface, which a transport written for it implements. Ours override it
        to do neither when the deadline is already enforced by an enclosing ``ClientDeadline``
        (``covered``): no clock read, no timer.
        """
        deadline = request.deadline
        if deadline is None:
            return self.send(request.endpoint, request, None)
        return self.send(request.endpoint, request, time_to_send(deadline, request))

    async def aclose(self) -> None:
        """Release what the transport owns. A session passed in by the user is the user's."""

    async def __aenter__(self) -> Transport:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
