"""``FakeTransport``: a transport a test scripts attempt by attempt. No network involved.

A script is a list of steps, one per attempt, in order::

    transport = FakeTransport([respond(503), respond(200, delay=0.2)], otherwise=fail(ConnectError))

``respond``, ``fail`` and ``hang`` make the usual steps; any ``Response``, exception or async
callable taking the request is a step too. Delays are seconds on the running loop's clock, so
under a virtual clock (the pytest plugin's ``virtual_clock``, or the conformance check's own
loop) they take no real time.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeAlias

from .._transport import Transport
from ..errors import PipelineError
from ..http import HeadersLike, Request, Response
from ..propagation import within

__all__ = ["FakeTransport", "Sent", "Step", "fail", "hang", "respond"]

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
    real transport would, with ``DeadlineExceededError``. ``sent`` records every call, and
    ``responses`` every response returned, in order (a test can check they were closed).

    Options:
        script: the steps, one per attempt, in order (``add`` appends more); default none.
        otherwise: the step for every attempt past the end of the script (a step that makes a
            fresh outcome per attempt, such as ``respond(200)``, answers any number of them);
            default ``None``: running out of steps is an ``AssertionError``, so a test cannot
            pass with more attempts than it scripted.
    """

    def __init__(self, script: Iterable[Step] = (), *, otherwise: Step | None = None) -> None:
        self._script: deque[Step] = deque(script)
        self.otherwise = otherwise
        self.sent: list[Sent] = []
        self.responses: list[Response] = []
        self.closed = False

    def add(self, *steps: Step) -> None:
        """Append ``steps`` to the script."""
        self._script.extend(steps)

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        self.sent.append(Sent(endpoint, request, timeout, asyncio.get_running_loop().time()))
        if self._script:
            step = self._script.popleft()
        elif self.otherwise is not None:
            step = self.otherwise
        else:
            raise AssertionError(f"FakeTransport: no step left for attempt {len(self.sent)}: {request!r}")
        if isinstance(step, BaseException):
            raise step
        if isinstance(step, Response):
            response = step
        else:
            async with within.after(timeout, request=request, message="fake transport: no response"):
                response = await step(request)
        self.responses.append(response)
        return response

    async def aclose(self) -> None:
        self.closed = True


def respond(
    status: int = 200, *, headers: HeadersLike = None, body: bytes = b"", delay: float = 0.0
) -> Callable[[Request], Awaitable[Response]]:
    """A step answering ``status`` with ``headers`` and ``body`` after ``delay`` seconds (default
    0: at once). Each attempt it answers gets a fresh ``Response`` that knows its request, so one
    step may serve as ``otherwise``."""
    if delay < 0:
        raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")

    async def answer(request: Request) -> Response:
        if delay:
            await asyncio.sleep(delay)
        return Response(status, headers, body, request=request)

    return answer


def fail(error: BaseException | type[BaseException], *, delay: float = 0.0) -> Callable[[Request], Awaitable[Response]]:
    """A step raising ``error`` after ``delay`` seconds (default 0: at once).

    An exception class makes a fresh exception per attempt (a ``PipelineError`` one carrying the
    request), so one step may serve as ``otherwise``; an exception instance is raised as it is.
    """
    if delay < 0:
        raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")

    async def raise_it(request: Request) -> Response:
        if delay:
            await asyncio.sleep(delay)
        if isinstance(error, BaseException):
            raise error
        if issubclass(error, PipelineError):
            raise error("scripted failure", request=request)
        raise error("scripted failure")

    return raise_it


def hang() -> Callable[[Request], Awaitable[Response]]:
    """A step that never answers: the attempt's deadline cuts it (``DeadlineExceededError``), or
    whoever cancels the call does."""

    async def never(request: Request) -> Response:
        await asyncio.get_running_loop().create_future()  # nobody ever completes it
        raise AssertionError("unreachable: the future is never completed")

    return never
