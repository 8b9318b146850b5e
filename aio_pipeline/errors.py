"""The exceptions of aio-pipeline, one flat tree::

    PipelineError                    every error raised by this library; carries ``request``
    ├── InvalidRequestError          the request cannot be sent as given (also a ValueError)
    ├── ContentTypeError             a body read as JSON is not JSON (also a ValueError)
    ├── TransportError               the network failed; the call may or may not have arrived
    │   ├── ConnectError             the request provably never left this machine
    │   └── TooManyRedirectsError    more redirects than the request allows
    ├── DeadlineExceededError        the deadline passed (also a TimeoutError)
    │   └── DeadlineRejectedError    refused before any work: a call or request with (nearly) no
    │                                time left; also a RejectedError
    └── RejectedError                refused before any work was done, to protect someone
        ├── CircuitOpenError         the circuit for the endpoint is open; ``retry_after`` seconds
        └── OverloadedError          the server is saturated; ``retry_after`` seconds

HTTP statuses are responses, not exceptions. ``asyncio.CancelledError`` is never wrapped.
"""

from __future__ import annotations

__all__ = [
    "CircuitOpenError",
    "ConnectError",
    "ContentTypeError",
    "DeadlineExceededError",
    "DeadlineRejectedError",
    "InvalidRequestError",
    "OverloadedError",
    "PipelineError",
    "RejectedError",
    "TooManyRedirectsError",
    "TransportError",
]


class PipelineError(Exception):
    """Base of every error raised by aio-pipeline.

    ``request`` is the request being handled: our client ``Request`` on the client side, the
    server framework's request on the server side, ``None`` where there was none.
    """

    def __init__(self, message: str, *, request: object = None) -> None:
        super().__init__(message)
        self.request = request


class InvalidRequestError(PipelineError, ValueError):
    """The request cannot be sent as given: a bad URL, a missing path parameter, a bad body."""


class ContentTypeError(PipelineError, ValueError):
    """``Response.json()`` was called on a body whose Content-Type is not JSON."""


class TransportError(PipelineError):
    """The network failed (reset, refused, truncated body, protocol error)."""


class ConnectError(TransportError):
    """No connection could be made, so the request never left this machine: always retryable."""


class TooManyRedirectsError(TransportError):
    """The server redirected more times than the request's ``max_redirects`` allows."""


class DeadlineExceededError(PipelineError, TimeoutError):
    """The deadline passed before the work could finish (or before it could start)."""


class RejectedError(PipelineError):
    """Refused before any work was done; ``retry_after`` is seconds until trying may help."""

    def __init__(self, message: str, *, request: object = None, retry_after: float = 0.0) -> None:
        super().__init__(message, request=request)
        self.retry_after = retry_after


class CircuitOpenError(RejectedError):
    """The circuit breaker for this endpoint is open; the next probe is ``retry_after`` away."""


class OverloadedError(RejectedError):
    """The server sheds this request to protect itself; answered with 503 and Retry-After."""


class DeadlineRejectedError(DeadlineExceededError, RejectedError):
    """Refused before any work was done, for lack of time: a server's request that arrived expired
    or with less than the low-timeout threshold left (its handler never ran), or a client's call or
    attempt with no time to send (it never left). A ``DeadlineExceededError`` (so it is answered
    as one, 408 by default) and a ``RejectedError``, which is how metrics and logs tell it from
    work cut at its deadline; ``retry_after`` is 0."""
