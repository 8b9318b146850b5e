"""Server middlewares as one ``aiohttp.web`` middleware: the server side's one aiohttp adapter.

    app = web.Application(middlewares=[aiohttp_server_middleware([ServerDeadline(), ServerPriority()])])

(``aiohttp_middleware_factory``, in the facade, assembles the standard stack and hands it here.)

The server middlewares share the client's shape, ``(request, call_next)``: here ``request`` is
the ``web.Request`` and the terminal handler is the application's. They raise the library's
errors to refuse work; this adapter answers them:

    DeadlineExceededError   ``expired_status`` (408 by default, as aio-request)
    OverloadedError         503 with ``Retry-After`` (whole seconds, rounded up)

so a bad ``X-Request-Timeout`` or an expired deadline never becomes a 500. A
``DeadlineExceededError`` escaping the handler (an outbound call ran out of the inherited
deadline) is answered the same way: the request's deadline is spent either way. Once the
response has started, though (the handler prepared a stream, an SSE or a WebSocket, and aiohttp
has written bytes of it: ``request.writer.output_size > 0``, aiohttp's own test in
``handle_error``), no second response can be written: the error goes on to aiohttp, which closes
the connection mid-response.

What went on the wire. The adapter is also the one place that knows which status a request was
answered with; metrics and logs record that (``aio_pipeline.observe.Exchange``), not what they see:

    a response the handler returned      its status when aiohttp prepares it (a ``FileResponse``
                                         or a static route picks 200, 206, 304, 404, 416 then;
                                         a stream the handler prepared keeps the status it had)
    DeadlineExceededError / Overloaded   ``expired_status`` / 503, as answered here
    an aiohttp ``HTTPException``         its own status
    any other ``TimeoutError``           504, as aiohttp answers it
    any other exception                  500, as aiohttp answers it (an outbound
                                         ``ClientResponseError(404)`` included)
    any exception after output started  no status known: ``aborted`` (the connection was closed;
                                         aiohttp's public API does not expose the status line of
                                         a response the handler prepared itself)
    a cancellation before any output     no status: ``cancelled``

A response that an aiohttp middleware outside this one replaces, so that it is never prepared,
is not recorded: keep this middleware outside the ones that swap responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias, TypeVar, cast

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.typedefs import Handler as AiohttpHandler
from aiohttp.typedefs import Middleware as AiohttpMiddleware

from ..chain import Middleware, checked_middlewares, compose
from ..errors import DeadlineExceededError, OverloadedError
from ..observe import CURRENT_EXCHANGE, EXPIRED_STATUS, Exchange, status_for
from ..propagation import clock_of

__all__ = [
    "ServerMiddleware",
    "aiohttp_handler_timeout",
    "aiohttp_server_middleware",
    "aiohttp_timeout",
    "observes",
]

#: A server middleware for aiohttp: ``async (web.Request, call_next) -> web.StreamResponse``.
ServerMiddleware: TypeAlias = Middleware[web.Request, web.StreamResponse]

HandlerT = TypeVar("HandlerT", bound=Callable[..., Any])

_TIMEOUT_ATTRIBUTE = "__aio_pipeline_timeout__"


def aiohttp_timeout(*, seconds: float) -> Callable[[HandlerT], HandlerT]:
    """Give a handler its own default timeout: the deadline of requests that carry none.

    Decorates a handler function, a ``web.View`` method or a whole ``web.View``::

        @aiohttp_timeout(seconds=60)
        async def report(request: web.Request) -> web.Response: ...

    A client's ``X-Request-Timeout`` still wins over it (capped by ``max_timeout``).

    Options:
        seconds: the handler's default timeout, seconds, finite and > 0; required.
    """
    if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"seconds must be a finite number of seconds > 0, got {seconds!r}")

    def mark(handler: HandlerT) -> HandlerT:
        setattr(handler, _TIMEOUT_ATTRIBUTE, float(seconds))
        return handler

    return mark


def aiohttp_handler_timeout(request: web.Request) -> float | None:
    """The ``@aiohttp_timeout`` seconds of the handler matched for ``request``, else ``None``.

    For a ``web.View`` the method for the request's HTTP method is looked at first, then the
    class. This is the ``handler_timeout`` to give ``ServerDeadline`` in a custom stack.
    """
    handler = request.match_info.handler
    if isinstance(handler, type) and issubclass(handler, web.View):
        method = getattr(handler, request.method.lower(), None)
        seconds = getattr(method, _TIMEOUT_ATTRIBUTE, None)
        if seconds is not None:
            return float(seconds)
    seconds = getattr(handler, _TIMEOUT_ATTRIBUTE, None)
    return float(seconds) if seconds is not None else None


def aiohttp_server_middleware(
    middlewares: Iterable[ServerMiddleware], *, expired_status: int = EXPIRED_STATUS
) -> AiohttpMiddleware:
    """One aiohttp middleware running ``middlewares`` (first outermost) around each handler.

    Our errors become responses: ``DeadlineExceededError`` -> ``expired_status``,
    ``OverloadedError`` -> 503 with ``Retry-After``, unless the response has already
    started: then they go on to aiohttp, which closes the connection. Every other exception,
    aiohttp's ``HTTPException`` included, passes through untouched. Everything runs in the
    request's own task, so context set by a middleware is seen by the handler. Each request's
    ``Exchange`` tells observers in ``middlewares`` the status that went on the wire.

    The chain is composed once per aiohttp handler, not per request (``_Chains``). Two things a
    step may offer this adapter:

        observes_exchange = False   (a class attribute) it never reads ``exchange_of``: a stack
                                    made only of such steps opens no exchange per request
                                    (``observes``); any other step is taken to read it
        for_handler(request)        a step specialised to the handler of ``request`` (one that
                                    read its ``@aiohttp_timeout``, say), asked for once per
                                    handler on its first request and used for every later one

    With observers in the stack, the loop's clock is read once per request, on arrival here (the
    exchange's ``started``): the durations they record count from then.

    Options:
        middlewares: the server middlewares, first outermost; required.
        expired_status: the status answering a ``DeadlineExceededError``, an HTTP error status
            (400-599); default 408.
    """
    if not isinstance(expired_status, int) or not 400 <= expired_status <= 599:
        raise ValueError(f"expired_status must be an HTTP error status (400-599), got {expired_status!r}")
    stack = checked_middlewares(middlewares)
    observed = observes(stack)
    chains = _Chains(stack)

    @web.middleware
    async def aio_pipeline_middleware(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
        try:
            chain = chains[handler]
        except (KeyError, TypeError):  # first request of this handler (or an unhashable one)
            chain = chains.bind(request, handler)
        if not observed:
            try:
                return await chain(request)
            except (DeadlineExceededError, OverloadedError) as error:
                if request.writer.output_size > 0:  # a second response would land inside the first
                    raise
                return _answer(error, expired_status)
        # The running loop's clock. Not ``loop_clock()``: that looks for a call's deadline scope
        # first, and a server request runs inside no call.
        clock = clock_of(asyncio.get_running_loop())
        exchange = Exchange(request, clock, clock())
        token = CURRENT_EXCHANGE.set(exchange)
        try:
            response = await chain(request)
        except (DeadlineExceededError, OverloadedError) as error:
            if request.writer.output_size > 0:
                exchange.sent(None, True)
                raise
            answer = _answer(error, expired_status)
            exchange.sent(answer.status)
            return answer
        except BaseException as error:
            started = request.writer.output_size > 0
            exchange.sent(None if started else status_for(error), started)
            raise
        finally:
            CURRENT_EXCHANGE.reset(token)
        if not exchange.callbacks:  # nobody waits for the status
            return response
        # Tell them when aiohttp prepares the response. aiohttp offers no per-request hook
        # (``on_response_prepare`` belongs to the application and is frozen before the first
        # request), so this instance's ``prepare`` is wrapped: aiohttp's ``finish_response`` calls
        # ``resp.prepare(request)`` once, after every middleware returned, and the status is final
        # then (a ``FileResponse`` sets it inside ``prepare``; for a response the handler prepared
        # itself the call returns at once, with the status it was sent with).
        try:
            prepare = response.prepare
        except AttributeError:  # not a response: aiohttp answers it with a 500
            exchange.sent(500)
            return response

        async def prepare_and_tell(request: web.BaseRequest) -> AbstractStreamWriter | None:
            del response.prepare  # the class's own again, and no reference cycle left behind
            try:
                writer = await prepare(request)
            except BaseException:
                exchange.sent(None, request.writer.output_size > 0)
                raise
            exchange.sent(response.status)
            return writer

        response.prepare = prepare_and_tell  # type: ignore[method-assign]
        return response

    return aio_pipeline_middleware


#: Chains one adapter keeps, as aiohttp keeps the middleware chains it builds per handler
#: (``web_app._cached_build_middleware``, an LRU cache of 1024).
MAX_CHAINS: Final = 1024


class _Chains(dict[Any, AiohttpHandler]):
    """The stack composed around each aiohttp handler, kept per handler.

    aiohttp hands a middleware the handler per request: the route's own, or the chain of the
    middlewares inside this one, which aiohttp itself builds once per route and caches. So the
    same handler comes back for every request of a route, and the stack is composed around it
    on its first request only. Handlers made afresh per request (the 404 and 405 of unmatched
    requests, old-style middlewares) are composed per request and not kept; at most
    ``MAX_CHAINS`` are kept, all dropped when that many are held.
    """

    def __init__(self, stack: tuple[ServerMiddleware, ...]) -> None:
        super().__init__()
        self.stack = stack

    def bind(self, request: web.Request, handler: AiohttpHandler) -> AiohttpHandler:
        steps = [_for_handler(step, request) for step in self.stack]
        chain = compose(steps, handler)
        if request.match_info.http_exception is None:  # a route's handler, not a 404/405 made for this request
            if len(self) >= MAX_CHAINS:
                self.clear()
            with contextlib.suppress(TypeError):  # an unhashable handler: composed per request
                self[handler] = chain
        return chain


def observes(middlewares: Iterable[ServerMiddleware]) -> bool:
    """Whether a request through ``middlewares`` needs an ``Exchange``: some step may read it,
    that is, does not say ``observes_exchange = False``."""
    return any(getattr(step, "observes_exchange", True) for step in middlewares)


def _for_handler(step: ServerMiddleware, request: web.Request) -> ServerMiddleware:
    specialise = getattr(step, "for_handler", None)
    return step if specialise is None else cast("ServerMiddleware", specialise(request))


def _answer(error: DeadlineExceededError | OverloadedError, expired_status: int) -> web.Response:
    if isinstance(error, DeadlineExceededError):
        return web.Response(status=expired_status, text="deadline exceeded")
    retry_after = max(math.ceil(error.retry_after), 0) if math.isfinite(error.retry_after) else 1
    return web.Response(status=503, text="overloaded", headers={"Retry-After": str(retry_after)})
