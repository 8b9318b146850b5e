"""Deadlines, enforced on both sides of a call.

``ClientDeadline`` resolves a call's deadline once and bounds the whole rest of the call by it:
user middlewares, every attempt and every wait between attempts. ``ServerDeadline`` reads the
caller's ``X-Request-Timeout``, refuses work that can no longer finish, and hands the deadline
to the handler through the context, so every call the handler makes inherits it. Both raise
``DeadlineExceededError``; on the server the adapter turns it into a 408. A request the server
refuses before its handler runs raises ``DeadlineRejectedError``, which is also a
``RejectedError``: observers count it as rejected, and a handler that ran and was cancelled at
its deadline (``cancel_on_timeout``) as a request that timed out, not as a rejection.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from aio_pipeline.chain import Handler
from aio_pipeline.errors import DeadlineExceededError, DeadlineRejectedError
from aio_pipeline.http import Request, Response
from aio_pipeline.propagation import (
    CONTEXT,
    DEFAULT_TIMEOUT,
    LOW_TIMEOUT_THRESHOLD,
    TIMEOUT_HEADER,
    Context,
    Deadline,
    DeadlineTimer,
    InboundRequest,
    earliest,
    get_context,
    inherited_deadline,
    parse_timeout,
    within,
)

__all__ = ["ClientDeadline", "ServerDeadline", "inbound_timeout"]

InboundT = TypeVar("InboundT", bound=InboundRequest)
ResponseT = TypeVar("ResponseT")


def inbound_timeout(value: str | None, *, max_timeout: float | None = None) -> float | None:
    """Seconds a server gives a request whose ``X-Request-Timeout`` is ``value``.

    Surrounding whitespace is ignored. Absent, empty, unparsable, ``nan`` and infinite values
    carry no deadline: ``None``, so that the server's default applies. Zero and negative
    values give ``0.0``: expired. Anything else is taken, then capped by ``max_timeout`` when
    set. The cap applies to what a client asks for, not to the server's own defaults.
    """
    seconds = parse_timeout(value)
    if seconds is not None and max_timeout is not None and seconds > max_timeout:
        return max_timeout
    return seconds


def _check_seconds(name: str, value: object, *, zero_ok: bool = False) -> None:
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be a finite number of seconds {'>= 0' if zero_ok else '> 0'}, got {value!r}")


def _too_little_time(left: float, threshold: float) -> str:
    if left <= 0:
        return "the deadline has already passed"
    return f"{left * 1000:.1f} ms left, below the low-timeout threshold of {threshold * 1000:.1f} ms"


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientDeadline:
    """The call deadline, resolved once and enforced over the whole call.

    The deadline is the explicit one (``Client.request(deadline=...)``) or the one inherited
    from the server request being handled (``get_context()``), or from the call this one is
    made inside (a middleware's own call, a redirect hop); when several exist the EARLIEST wins,
    so an explicit 30 s inside a request with 0.5 s left gets 0.5 s. With none, the call gets
    ``timeout``. The resolved deadline is put on the request for the inner layers.

    A call with less than ``low_timeout_threshold`` left (or none) fails at once with
    ``DeadlineRejectedError`` (a ``DeadlineExceededError``), without touching the network.
    Otherwise everything inside,
    including retries and the sleeps between them, is cancelled when the deadline passes,
    which surfaces as ``DeadlineExceededError`` too.

    Options:
        timeout: seconds for a call with no explicit and no inherited deadline; default 20.
        low_timeout_threshold: seconds; a call with less left fails at once; default 0.005 (5 ms).
    """

    #: resolves what the callee must be told: a stack needs ``SystemHeaders`` after it (``checked_middlewares``)
    needs_wire_writer: ClassVar[bool] = True

    timeout: float = DEFAULT_TIMEOUT
    low_timeout_threshold: float = LOW_TIMEOUT_THRESHOLD
    _timer: DeadlineTimer = field(default_factory=DeadlineTimer, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_seconds("timeout", self.timeout)
        _check_seconds("low_timeout_threshold", self.low_timeout_threshold, zero_ok=True)

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``)."""

        async def within_deadline(request: Request) -> Response:
            loop = asyncio.get_running_loop()
            now = loop.time()
            deadline = earliest(request.deadline, inherited_deadline())
            if deadline is None:
                deadline = Deadline(now + self.timeout)
            left = deadline.deadline_at - now
            if left <= 0 or left < self.low_timeout_threshold:
                raise DeadlineRejectedError(_too_little_time(left, self.low_timeout_threshold), request=request)
            if deadline is not request.deadline:
                request = request.replace(deadline=deadline)
            # One timer for every call of this middleware, not one per call (``DeadlineTimer``): the
            # scope cancels this task in place (no extra task; contextvars and an outer cancellation
            # flow through untouched), and while it is live the layers inside need no timer of their
            # own for this deadline (``covered``). Only our own expiry becomes a deadline error; any
            # other cancellation or TimeoutError is not ours to rename.
            timer = self._timer
            scope = timer.enter(deadline, loop)
            try:
                response = await call_next(request)
            except asyncio.CancelledError as error:
                if timer.leave(scope) and scope.task.uncancel() <= scope.cancelling:
                    raise DeadlineExceededError("the call's deadline passed", request=request) from error
                raise
            except BaseException:
                if timer.leave(scope):  # expired, but the cancellation did not come out: take it back
                    scope.task.uncancel()
                raise
            if timer.leave(scope):  # expired, but the cancellation did not come out: take it back
                scope.task.uncancel()
            return response

        return within_deadline

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerDeadline:
    """The deadline of an inbound request, read from ``X-Request-Timeout``, for the handler.

    The header is read by ``inbound_timeout``: a request without a usable value gets the
    per-handler default (from ``handler_timeout``) or ``timeout``; a client's value is capped
    by ``max_timeout``. A request with less than ``low_timeout_threshold`` left (an expired
    one included) is refused with ``DeadlineRejectedError`` and the handler never runs.
    Otherwise the handler runs with the deadline in the context (``get_context().deadline``),
    inherited by every call it makes. With ``cancel_on_timeout`` the handler is also cancelled
    when the deadline passes, and a plain ``DeadlineExceededError`` raised: it ran, so it was
    not rejected.

    Options:
        timeout: seconds for a request that carries no deadline; default 20.
        max_timeout: the most seconds a client may ask for; default ``None`` (no cap).
        low_timeout_threshold: seconds; a request with less left is refused; default 0.005 (5 ms).
        cancel_on_timeout: cancel the handler at the deadline; default ``False``.
        handler_timeout: a function giving the per-handler default timeout of a request, in
            seconds, or ``None`` when its handler has none; the server adapter supplies it (for
            aiohttp, ``aiohttp_handler_timeout``, which reads ``@aiohttp_timeout``); default
            ``None``.
    """

    #: never reads the exchange (``aiohttp_server_middleware``): a stack of such steps opens none
    observes_exchange: ClassVar[bool] = False

    timeout: float = DEFAULT_TIMEOUT
    max_timeout: float | None = None
    low_timeout_threshold: float = LOW_TIMEOUT_THRESHOLD
    cancel_on_timeout: bool = False
    handler_timeout: Callable[[Any], float | None] | None = None

    def __post_init__(self) -> None:
        _check_seconds("timeout", self.timeout)
        if self.max_timeout is not None:
            _check_seconds("max_timeout", self.max_timeout)
        _check_seconds("low_timeout_threshold", self.low_timeout_threshold, zero_ok=True)
        if self.handler_timeout is not None and not callable(self.handler_timeout):
            raise ValueError(
                f"handler_timeout must be callable (request -> seconds or None), got {self.handler_timeout!r}"
            )

    def default_timeout(self, request: InboundRequest) -> float:
        """Seconds for ``request`` when it carries no usable ``X-Request-Timeout``: its handler's
        default (``handler_timeout``), else ``timeout``."""
        if self.handler_timeout is not None:
            seconds = self.handler_timeout(request)
            if seconds is not None:
                if not seconds < math.inf:  # NaN or infinite: no deadline can be made of it (zero or less is refused)
                    raise ValueError(f"handler_timeout must give finite seconds, gave {seconds!r}")
                return seconds
        return self.timeout

    def refusal(self, request: InboundRequest, seconds: float) -> DeadlineRejectedError:
        """The error refusing ``request`` with only ``seconds`` left (below ``low_timeout_threshold``
        or spent); a server adapter running this rule in a step of its own raises the same."""
        return DeadlineRejectedError(
            f"request refused: {_too_little_time(seconds, self.low_timeout_threshold)}", request=request
        )

    async def __call__(self, request: InboundT, call_next: Callable[[InboundT], Awaitable[ResponseT]], /) -> ResponseT:
        value = request.headers.get(TIMEOUT_HEADER)
        seconds = None if value is None else inbound_timeout(value, max_timeout=self.max_timeout)
        if seconds is None:
            seconds = self.default_timeout(request)
        if seconds <= 0 or seconds < self.low_timeout_threshold:
            raise self.refusal(request, seconds)
        at = asyncio.get_running_loop().time() + seconds
        # The context's deadline replaced, its priority kept, in one step (see ``CONTEXT``).
        token = CONTEXT.set(Context(Deadline(at), get_context().priority))
        try:
            if not self.cancel_on_timeout:
                return await call_next(request)
            async with within(at, request=request, message="handler cancelled at its deadline"):
                return await call_next(request)
        finally:
            CONTEXT.reset(token)
