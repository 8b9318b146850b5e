"""``FakeTransport``: a transport a test scripts attempt by attempt. No network involved."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

from .._deadline import within
from .._request import Request
from .._response import Response
from .._transport import Transport

__all__ = ["FakeTransport", "Sent", "Step"]

Step: TypeAlias = "Response | BaseException | Callable[[Request], Awaitable[Response]]"


@dataclass(frozen=True, slots=True)
class Sent:
    """What one ``send`` received, and when (seconds on the loop's clock)."""

    endpoint: str | None
    request: Request
    timeout: float | None
    at: float


class FakeTransport(Transport):
    """Answers each ``send`` with the next step of ``script``.

    A step is a ``Response`` (returned), an exception (raised) or an async callable taking the
    request (awaited: sleep in it to model latency). The attempt's ``timeout`` is enforced as a
    real transport would. ``sent`` records every call; running out of steps is an
    ``AssertionError``, so a test cannot pass with more attempts than it scripted.
    """

    def __init__(self, script: Iterable[Step] = ()) -> None:
        self._script: deque[Step] = deque(script)
        self.sent: list[Sent] = []
        self.closed = False

    def add(self, *steps: Step) -> None:
        self._script.extend(steps)

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        self.sent.append(Sent(endpoint, request, timeout, asyncio.get_running_loop().time()))
        if not self._script:
            raise AssertionError(f"FakeTransport: no step left for attempt {len(self.sent)}: {request!r}")
        step = self._script.popleft()
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Response):
            return step
        async with within.after(timeout, request=request, message="fake transport: no response"):
            return await step(request)

    async def aclose(self) -> None:
        self.closed = True
