"""Failures as synthetic responses, as aio-request's ``Client.request`` never raises for them.

    DeadlineExceededError     408  X-Do-Not-Retry: 1 when it was refused before sending
                                   (less than the low-timeout threshold left), as aio-request's
    TooManyRedirectsError     488  X-Do-Not-Retry: 1
    any other TransportError  489  (a network error)
    CircuitOpenError          502  X-Circuit-Breaker: 1, X-Do-Not-Retry: 1, Retry-After
    OverloadedError           503  Retry-After

``InvalidRequestError`` (a bug in the caller's request) and ``asyncio.CancelledError`` are raised
as they are. The original error is kept on the response as ``response.error`` for logging.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from .._transport import Transport
from ..chain import Handler
from ..errors import (
    CircuitOpenError,
    DeadlineExceededError,
    DeadlineRejectedError,
    OverloadedError,
    PipelineError,
    TooManyRedirectsError,
    TransportError,
)
from ..http import Request, Response
from ..propagation import loop_time
from ._familiar import EMPTY_HEADERS, EmptyResponse, Header

__all__ = ["SyntheticResponse", "SyntheticResponses", "synthetic_response", "synthetic_send"]


class SyntheticResponse(EmptyResponse):
    """An ``EmptyResponse`` standing for ``error``, which no server sent."""

    __slots__ = ("error",)

    def __init__(self, *, status: int, error: PipelineError, headers: dict[str, str] | None = None) -> None:
        super().__init__(status=status, headers=EMPTY_HEADERS if headers is None else headers)
        self.error = error


def _seconds(value: float) -> str:
    return str(max(math.ceil(value), 0)) if math.isfinite(value) else "1"


def synthetic_response(error: PipelineError) -> SyntheticResponse | None:
    """The synthetic response standing for ``error``, or ``None`` when it must be raised."""
    if isinstance(error, DeadlineExceededError):
        if _refused_before_sending(error):
            return SyntheticResponse(status=408, error=error, headers={Header.X_DO_NOT_RETRY: "1"})
        return SyntheticResponse(status=408, error=error)
    if isinstance(error, TooManyRedirectsError):
        return SyntheticResponse(status=488, error=error, headers={Header.X_DO_NOT_RETRY: "1"})
    if isinstance(error, TransportError):
        return SyntheticResponse(status=489, error=error)
    if isinstance(error, CircuitOpenError):
        headers = {Header.X_CIRCUIT_BREAKER: "1", Header.X_DO_NOT_RETRY: "1"}
        return SyntheticResponse(
            status=502, error=error, headers={**headers, "Retry-After": _seconds(error.retry_after)}
        )
    if isinstance(error, OverloadedError):
        return SyntheticResponse(status=503, error=error, headers={"Retry-After": _seconds(error.retry_after)})
    return None


def _refused_before_sending(error: DeadlineExceededError) -> bool:
    """Whether the call was refused for too little time left, before anything was sent (aio-request
    answers that 408 with ``X-Do-Not-Retry``; one that timed out, without): a
    ``DeadlineRejectedError``, as ``ClientDeadline``, the strategies and the transports raise."""
    return isinstance(error, DeadlineRejectedError)


async def synthetic_send(transport: Transport, endpoint: Any, request: Request, timeout: float | None) -> Response:
    """``transport.send(...)`` answered as aio-request's transports answer: failures as synthetic
    responses (408, 488, 489) rather than exceptions, and ``elapsed`` measured. For code that
    called aio-request's ``Transport.send()`` directly; ours raises (see the README)."""
    started = loop_time()
    try:
        response = await transport.send(None if endpoint is None else str(endpoint), request, timeout)
    except PipelineError as error:
        synthetic = synthetic_response(error)
        if synthetic is None:
            raise
        response = synthetic
    response.elapsed = loop_time() - started
    return response


@dataclass(frozen=True, slots=True)
class SyntheticResponses:
    """The outermost middleware of the facade: turns the library's failures into responses."""

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``)."""

        async def answered(request: Request) -> Response:
            try:
                return await call_next(request)
            except PipelineError as error:
                response = synthetic_response(error)
                if response is None:
                    raise
                return response

        return answered

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)
