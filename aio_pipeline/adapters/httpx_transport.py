"""Our middlewares inside a plain ``httpx.AsyncClient``, as a wrapping transport.

    client = httpx.AsyncClient(transport=HttpxPipelineTransport([
        ClientDeadline(), ClientPriority(), PerCallStrategy(SequentialStrategy()),
        CircuitBreakerMiddleware(breaker), SystemHeaders(),
    ]))
    response = await client.get(url)                  # call sites unchanged

The deadline and priority come from ``extensions={"deadline": Deadline, "priority": Priority}``
on a request, else from ``with set_context(...):`` around the calls or the server request being
handled (the earlier deadline wins), else ClientDeadline's default timeout.

What an attempt is. httpx follows redirects and runs auth flows above its transport, so our
stack runs once per request httpx sends: each redirect hop is a new run, with attempts numbered
from 1 and the call's deadline. Hops share that deadline, whichever layer resolved it (an
extension, the context, ClientDeadline's default): a run leaves it in the extensions of the
request it was given, which httpx copies to the redirect it builds from it (``_Carried``). A
request object httpx sends a second time (an auth flow's next round, your own resend) is a new
call. Within a run, an attempt is one ``inner.handle_async_request`` plus reading the whole
body, bounded by the attempt's deadline and shielded from httpcore's double-cancel problem
(``cancelled_once``); the inner transport's own connect retries (``retries=``) happen inside it.
httpx's errors are judged by the same ``map_error`` as ``HttpxTransport``'s.

What the caller sees: an ``httpx.Response`` with the winning attempt's status, headers and body
(as received: any Content-Encoding is left for httpx to decode). Every attempt's connection is
released as soon as its body is read. A network failure is re-raised as the last attempt's own
httpx exception, so ``except httpx.HTTPError`` still matches; ``CircuitOpenError`` and
``DeadlineExceededError`` (a ``TimeoutError``) are ours.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Iterable
from types import MappingProxyType
from typing import Any, Final, TypeVar

import httpx

from ..chain import Middleware, checked_middlewares, compose
from ..errors import InvalidRequestError, PipelineError
from ..extensions import HTTPX_CALL
from ..http import Headers, Request, Response
from ..middlewares import propagation_stack
from ..propagation import Deadline, Priority, covered, inherited_deadline, time_to_send, within
from ..transports.httpx import HTTPX_ERRORS, HttpxError, cancelled_once, map_error

__all__ = ["HttpxPipelineTransport"]

T = TypeVar("T")

#: The httpx request extension carrying the call's deadline to the next redirect hop (``_Carried``).
_CARRIED: Final = "aio_pipeline.call_deadline"
#: Headers httpx derives from the URL and the body: rewritten when a middleware changes those.
_DERIVED = ("Host", "Content-Length", "Transfer-Encoding")


class HttpxPipelineTransport(httpx.AsyncBaseTransport):
    """Runs ``middlewares`` (first outermost) for every request, sending through ``inner``.

    The request body is read into memory before the first attempt (a streaming body is resent
    whole by a retry or a hedge), and so is every response body, inside its attempt.

    Options:
        middlewares: our middlewares, first outermost; a stack with a deadline or a priority but
            nothing that writes them is refused (``checked_middlewares``); default ``None``: the
            standard propagation stack (``propagation_stack()``: deadline, priority, and both
            written on the wire).
        inner: the httpx transport that sends; ``aclose()`` closes it; default ``None``: a new
            ``httpx.AsyncHTTPTransport()``.
    """

    def __init__(
        self,
        middlewares: Iterable[Middleware[Request, Response]] | None = None,
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.middlewares = checked_middlewares(propagation_stack() if middlewares is None else middlewares)
        self.inner = inner if inner is not None else httpx.AsyncHTTPTransport()
        self._handler = compose(self.middlewares, self._send)

    def __repr__(self) -> str:
        names = [getattr(m, "__qualname__", type(m).__qualname__) for m in self.middlewares]
        return f"HttpxPipelineTransport({' -> '.join([*names, type(self.inner).__qualname__])})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = _extension(request, "deadline", Deadline)
        carried = request.extensions.get(_CARRIED)
        if isinstance(carried, _Carried) and carried.copied_to(request):  # a redirect hop
            deadline = _earliest(deadline, carried.deadline)
        call = _Call(request, await request.aread(), deadline)
        ours = Request(
            method=request.method,
            url=str(request.url),
            headers=Headers(request.headers.multi_items()),
            body=call.body,
            deadline=deadline,
            priority=_extension(request, "priority", Priority),
            extensions=MappingProxyType({HTTPX_CALL.name: call}),
        )
        try:
            response = await self._handler(ours)
        except Exception as error:
            original = call.errors.get(error)
            if original is None:
                raise
        else:
            if call.deadline is not None:
                request.extensions[_CARRIED] = _Carried(call.deadline, request)
            return call.returned(response)
        raise original  # outside the except block: the httpx error is not chained to its wrapper

    async def _send(self, request: Request) -> Response:
        """The terminal handler: one attempt through ``inner``, bounded by the attempt's deadline."""
        call = HTTPX_CALL.get(request)
        if not isinstance(call, _Call):
            raise InvalidRequestError("a middleware replaced the request instead of copying it (request.replace)")
        deadline = request.deadline
        timeout = None if deadline is None else time_to_send(deadline, request)
        outgoing = call.outgoing(request)
        # The call's deadline, for the next hop: the one ClientDeadline resolved is what code
        # inside the call inherits, where this attempt's own (maybe a share) is not.
        call.deadline = _earliest(call.deadline, inherited_deadline())
        at = None if deadline is None or covered(deadline) else deadline.deadline_at
        try:
            async with within(at, request=request, message="no response", seconds=timeout):
                response, body = await cancelled_once(self._exchange(outgoing))
        except HTTPX_ERRORS as error:
            raise call.mapped(error, request) from error
        headers = Headers.from_pairs(response.headers.multi_items())
        ours = Response(response.status_code, headers, body, url=str(outgoing.url), request=request)
        call.extensions[ours] = response.extensions
        return ours

    async def _exchange(self, outgoing: httpx.Request) -> tuple[httpx.Response, bytes]:
        """One request through ``inner`` and its whole body; the response is closed on return."""
        response = await self.inner.handle_async_request(outgoing)
        try:
            # Raw: decoding is the client's job, on the response it gets back.
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        finally:
            await response.aclose()
        return response, body

    async def aclose(self) -> None:
        await self.inner.aclose()


class _Call:
    """One run of the stack for one httpx request, and what maps its outcome back to httpx."""

    __slots__ = ("body", "deadline", "errors", "extensions", "origin")

    def __init__(self, origin: httpx.Request, body: bytes, deadline: Deadline | None) -> None:
        self.origin = origin
        self.body = body
        #: The call's deadline as far as known: the run's own, then the one its attempts inherit.
        self.deadline = deadline
        self.extensions: dict[Response, dict[str, Any]] = {}
        self.errors: dict[BaseException, Exception] = {}

    def outgoing(self, request: Request) -> httpx.Request:
        origin = self.origin
        extensions = dict(origin.extensions)
        if request.url == str(origin.url) and request.body == self.body:
            # After ``aread`` the stream is a ByteStream: replayable, and safe to share.
            return httpx.Request(
                request.method,
                origin.url,
                headers=request.headers.multi_items(),
                stream=origin.stream,
                extensions=extensions,
            )
        headers = request.headers.without(*_DERIVED).multi_items()
        return httpx.Request(
            request.method, request.absolute_url(), headers=headers, content=request.body, extensions=extensions
        )

    def mapped(self, error: HttpxError, request: Request) -> PipelineError:
        """Our error for httpx's, so strategies and the breaker can judge it; remembered, so the
        caller gets httpx's own back if it ends the call. An attempt is one request on one hop
        (httpx sends the next hop as a new run), so nothing was sent before it."""
        ours = map_error(error, request, sent_before=False)
        self.errors[ours] = error
        return ours

    def returned(self, response: Response) -> httpx.Response:
        """The httpx response for the stack's outcome; closing it closes ours."""
        extensions = self.extensions.get(response, {})
        kept: dict[str, Any] = {key: extensions[key] for key in ("http_version", "reason_phrase") if key in extensions}
        return httpx.Response(
            response.status,
            headers=list(response.headers.items()),
            stream=_Body(response),
            extensions=kept,
            request=self.origin,
        )


class _Body(httpx.AsyncByteStream):
    """The body of our response, closing it when httpx closes the response it went into."""

    def __init__(self, response: Response) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield await self._response.read()

    async def aclose(self) -> None:
        await self._response.close()


class _Carried:
    """The deadline of a call, left in the extensions of the request httpx sent for it.

    httpx builds a redirect from the request it follows, extensions copied, so the next hop
    finds the deadline there. The request it was left in is remembered (weakly): when httpx
    sends that same object again (an auth flow's next round) or you do, it is a new call,
    which must not inherit a deadline that may have passed.
    """

    __slots__ = ("_left_in", "deadline")

    def __init__(self, deadline: Deadline, left_in: httpx.Request) -> None:
        self.deadline = deadline
        self._left_in = weakref.ref(left_in)

    def copied_to(self, request: httpx.Request) -> bool:
        return self._left_in() is not request


def _earliest(first: Deadline | None, second: Deadline | None) -> Deadline | None:
    if first is None:
        return second
    return first if second is None else min(first, second)


def _extension(request: httpx.Request, key: str, kind: type[T]) -> T | None:
    value = request.extensions.get(key)
    if value is not None and not isinstance(value, kind):
        raise InvalidRequestError(f"extensions[{key!r}] must be a {kind.__name__} or None, got {value!r}")
    return value
