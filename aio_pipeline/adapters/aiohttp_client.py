"""Our middlewares inside a plain ``aiohttp.ClientSession`` (aiohttp >= 3.12 client middlewares).

    session = aiohttp.ClientSession(middlewares=aiohttp_client_middlewares([
        ClientDeadline(), ClientPriority(), PerCallStrategy(SequentialStrategy()),
        CircuitBreakerMiddleware(breaker), SystemHeaders(),
    ]))
    async with session.get(url) as response: ...     # call sites unchanged

Deadline and priority come from ``with set_context(...):`` around the calls or from the server
request being handled; otherwise the call gets ClientDeadline's default timeout.

What an attempt is. aiohttp runs client middlewares once per request it sends, so our stack runs
once per *hop*: each redirect is a new run (attempts numbered from 1, a breaker sample for the
hop's host, the same deadline when it comes from the context, a fresh default timeout
otherwise). Within a run, an attempt is one call of aiohttp's inner handler (the session
middlewares after ours, connect, send, the response head, and the body with
``buffer_payload=True``) on its own copy of aiohttp's request, bounded by the attempt deadline.
aiohttp's keep-alive retry is outside our stack: a run ending in ``ClientOSError`` or
``ServerDisconnectedError`` for an idempotent method is followed by one more run. aiohttp's
errors are judged by ``AioHttpTransport``'s ``map_error``: to the strategies and the breaker, an
attempt that could not connect (or timed out connecting, waiting for a pool slot included) sent
nothing, a ``ConnectError``; were a middleware of yours after ours to send one attempt twice,
that would no longer hold.

The caller gets the winning attempt's ``ClientResponse``; every other one is released. A network
failure is re-raised as the last attempt's own aiohttp exception, so ``except aiohttp.ClientError``
still matches; ``CircuitOpenError`` and ``DeadlineExceededError`` (a ``TimeoutError``) are ours.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterable
from types import MappingProxyType
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import payload

from ..chain import Middleware, checked_middlewares, compose
from ..errors import DeadlineExceededError, InvalidRequestError, PipelineError
from ..extensions import AIOHTTP_CALL
from ..http import Headers, Request, Response
from ..middlewares import propagation_stack
from ..propagation import covered, time_to_send, within
from ..transports.aiohttp import map_error

if TYPE_CHECKING:
    from aiohttp import ClientHandlerType, ClientMiddlewareType

__all__ = ["aiohttp_client_middlewares"]

#: The request extension carrying the aiohttp side of one run (``_Call``) to the terminal handler.


def aiohttp_client_middlewares(
    middlewares: Iterable[Middleware[Request, Response]] | None = None, *, buffer_payload: bool = False
) -> tuple[ClientMiddlewareType, ...]:
    """What ``ClientSession(middlewares=...)`` takes: one aiohttp middleware running ``middlewares``.

    They run first outermost, for every request. Your own aiohttp middlewares listed before it
    run once per hop and see the response the caller gets; those after it run once per attempt.
    The request body is read into memory once, before the first attempt, so a retry or a hedge
    resends it whole, never empty; for a big upload that must stream, pass ``middlewares=()`` to
    that one ``session.request``.

    Options:
        middlewares: our middlewares, first outermost; a stack with a deadline or a priority but
            nothing that writes them is refused (``checked_middlewares``); default ``None``: the
            standard propagation stack (``propagation_stack()``: deadline, priority, and both
            written on the wire).
        buffer_payload: read the response body inside the attempt, under its deadline and
            retried if broken (``read()``, ``text()`` and ``json()`` work; ``response.content``
            is then drained); default ``False``: the caller reads it, as before, and a streamed
            download keeps streaming, outside our deadline.
    """
    if not hasattr(aiohttp, "ClientMiddlewareType"):
        raise ImportError(f"aiohttp_client_middlewares needs aiohttp >= 3.12, not {aiohttp.__version__}")
    stack = propagation_stack() if middlewares is None else middlewares
    return (_PipelineMiddleware(stack, buffer_payload=buffer_payload),)


class _PipelineMiddleware:
    """The one aiohttp middleware; the chain is composed once, per-call state travels in the request."""

    __slots__ = ("_handler", "buffer_payload", "middlewares")

    def __init__(self, middlewares: Iterable[Middleware[Request, Response]], *, buffer_payload: bool) -> None:
        self.middlewares = checked_middlewares(middlewares)
        self.buffer_payload = buffer_payload
        self._handler = compose(self.middlewares, _send)

    def __repr__(self) -> str:
        names = [getattr(m, "__qualname__", type(m).__qualname__) for m in self.middlewares]
        return f"aiohttp_client_middlewares({' -> '.join(names)})"

    async def __call__(self, origin: aiohttp.ClientRequest, handler: ClientHandlerType, /) -> aiohttp.ClientResponse:
        body = await _buffer_body(origin)
        call = _Call(origin, handler, body, self.buffer_payload)
        request = Request(
            method=origin.method,
            url=str(origin.url),
            headers=Headers(origin.headers.items()),
            body=body,
            extensions=MappingProxyType({AIOHTTP_CALL.name: call}),
        )
        try:
            response = await self._handler(request)
        except BaseException as error:
            call.release()
            original = call.errors.get(error) if isinstance(error, PipelineError) else None
            if original is None:
                raise
        else:
            return await call.returned(response)
        raise original  # outside the except block: the aiohttp error is not chained to its wrapper


class _Call:
    """One run of the stack for one aiohttp request: what the terminal handler needs, and every
    response and mapped error it produced, so that the outcome maps back to aiohttp's own."""

    __slots__ = ("body", "buffer_payload", "errors", "handler", "origin", "responses")

    def __init__(
        self, origin: aiohttp.ClientRequest, handler: ClientHandlerType, body: bytes, buffer_payload: bool
    ) -> None:
        self.origin = origin
        self.handler = handler
        self.body = body
        self.buffer_payload = buffer_payload
        self.responses: dict[Response, aiohttp.ClientResponse] = {}
        self.errors: dict[BaseException, aiohttp.ClientError] = {}

    def outgoing(self, request: Request) -> aiohttp.ClientRequest:
        """aiohttp's request with this attempt's headers, as a copy: attempts may overlap (hedging),
        and aiohttp's request keeps per-send state (headers, body writer, response)."""
        origin = self.origin
        if request.method != origin.method or request.url != str(origin.url) or request.body != self.body:
            raise InvalidRequestError(
                "inside an aiohttp session a middleware may change a request's headers only, "
                f"not its method, URL or body ({request.method} {request.url})",
                request=request,
            )
        outgoing = copy.copy(origin)
        outgoing.update_headers(request.headers.multi_items())
        outgoing.update_expect_continue()  # its own "100 Continue" waiter, when one is expected
        return outgoing

    async def receive(self, outgoing: aiohttp.ClientRequest, request: Request) -> Response:
        client_response = await self.handler(outgoing)
        try:
            body = await client_response.read() if self.buffer_payload else b""
        except BaseException:
            client_response.close()  # a half-read connection must not go back to the pool
            raise

        async def release() -> None:
            client_response.release()

        reader = None if self.buffer_payload else client_response.read
        response = Response(
            client_response.status,
            client_response.headers,  # aiohttp's read-only multidict: ours as it is
            body,
            url=client_response.url,
            reader=reader,
            on_close=release,
            request=request,
        )
        self.responses[response] = client_response
        return response

    def mapped(self, error: aiohttp.ClientError, request: Request) -> PipelineError:
        """Our error for aiohttp's, by the same ``map_error`` as ``AioHttpTransport``'s, so
        strategies and the breaker can judge it; remembered, so the caller gets aiohttp's own
        back if it ends the call. An attempt is one send of one hop (aiohttp runs the next hop,
        and its resend, as a new run), so nothing was sent before it."""
        ours = map_error(error, request, sent_before=False)
        self.errors[ours] = error
        return ours

    def release(self, keep: aiohttp.ClientResponse | None = None) -> None:
        """Release every response but ``keep``. Idempotent: strategies release what they discard."""
        for client_response in self.responses.values():
            if client_response is not keep:
                client_response.release()

    async def returned(self, response: Response) -> aiohttp.ClientResponse:
        winner = self.responses.get(response)
        self.release(keep=winner)
        if winner is None:
            await response.close()
            raise PipelineError(
                f"inside an aiohttp session the stack must return a response aiohttp received, got {response!r}"
            )
        return winner


async def _send(request: Request) -> Response:
    """The terminal handler: one attempt through aiohttp, bounded by the attempt's deadline."""
    call = AIOHTTP_CALL.get(request)
    if not isinstance(call, _Call):
        raise InvalidRequestError("a middleware replaced the request instead of copying it (request.replace)")
    deadline = request.deadline
    timeout = None if deadline is None else time_to_send(deadline, request)
    outgoing = call.outgoing(request)
    at = None if deadline is None or covered(deadline) else deadline.deadline_at
    try:
        async with within(at, request=request, message="no response", seconds=timeout):  # None: no timer
            return await call.receive(outgoing, request)
    except DeadlineExceededError:
        raise
    except aiohttp.ClientError as error:  # aiohttp's plain TimeoutErrors go through as they are
        raise call.mapped(error, request) from error


async def _buffer_body(origin: aiohttp.ClientRequest) -> bytes:
    """The body as bytes, with aiohttp's request now sending those bytes: every attempt, redirect
    and keep-alive retry resends it whole, and overlapping attempts share no file or iterator."""
    body = origin.body
    if not isinstance(body, payload.Payload):
        return b""  # aiohttp's "no body"
    if isinstance(body, payload.BytesPayload):  # bytes, str, JSON: immutable, already replayable
        return bytes(await body.as_bytes())
    if body.consumed:
        raise InvalidRequestError(f"the request body ({type(body).__name__}) was already sent and cannot be replayed")
    try:
        data = await body.as_bytes()
    except TypeError as error:  # a multipart body part being proxied is readable only once
        raise InvalidRequestError(f"cannot buffer a {type(body).__name__} body: {error}") from error
    with warnings.catch_warnings():
        # aiohttp advises against big bytes bodies (they block while written); the user chose the
        # body, we only keep it. Synchronous, so no other task runs with the filter changed.
        warnings.simplefilter("ignore", ResourceWarning)
        buffered = payload.BytesPayload(data, content_type=body.content_type)
    await origin.update_body(buffered)
    return data
