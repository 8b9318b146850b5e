"""Our server middlewares as one ``aiohttp.web`` middleware; the only server module importing aiohttp.

    app = web.Application(middlewares=[aiohttp_middleware_factory(timeout=10, max_timeout=30)])

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
answered with; metrics and logs record that (``aio_pipeline._exchange``), not what they see:

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
import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.typedefs import Handler as AiohttpHandler
from aiohttp.typedefs import Middleware as AiohttpMiddleware

from .._errors import DeadlineExceededError, OverloadedError
from .._pipeline import Middleware, compose
from ..http import check_header_name
from ..observe import CURRENT_EXCHANGE, EXPIRED_STATUS, Exchange, status_for
from ..propagation import (
    CONTEXT,
    LOW_TIMEOUT_THRESHOLD,
    PRIORITY_HEADER,
    SERVICE_NAME_HEADER,
    TIMEOUT_HEADER,
    Context,
    Deadline,
    Priority,
    within,
)

if TYPE_CHECKING:
    from ..observe import MetricsProvider

__all__ = [
    "ServerMiddleware",
    "aiohttp_handler_timeout",
    "aiohttp_middleware_factory",
    "aiohttp_server_middleware",
    "aiohttp_timeout",
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

    Our errors become responses: ``DeadlineExceededError`` -> ``expired_status`` (default
    408), ``OverloadedError`` -> 503 with ``Retry-After``, unless the response has already
    started: then they go on to aiohttp, which closes the connection. Every other exception,
    aiohttp's ``HTTPException`` included, passes through untouched. Everything runs in the
    request's own task, so context set by a middleware is seen by the handler. Each request's
    ``Exchange`` tells observers in ``middlewares`` the status that went on the wire.

    The chain is composed once per aiohttp handler, not per request (``_Chains``), and our own
    ``ServerDeadline`` directly followed by our own ``ServerPriority`` (the standard stack) runs
    as one step (``_Admission``): the same rules, one context entry. With observers in the
    stack, the loop's clock is read once per request, on arrival here (the exchange's
    ``started``): the durations observers record and the deadline of that step count from then,
    so time spent in middlewares before it counts against the request's deadline.
    """
    if not isinstance(expired_status, int) or not 400 <= expired_status <= 599:
        raise ValueError(f"expired_status must be an HTTP error status (400-599), got {expired_status!r}")
    stack = _callables("middlewares", middlewares)
    # Only observers read the exchange (``exchange_of``): a stack of our deadline, priority and
    # shedding steps alone has none, and skips opening one per request.
    observed = any(type(step) not in _blind_types() for step in stack)
    chains = _Chains(_fused(stack, observed))

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
        # The running loop's clock (see ``_ASYNCIO_TIME``). Not ``loop_clock()``: that looks for
        # a call's deadline scope first, and a server request runs inside no call.
        loop = asyncio.get_running_loop()
        clock = time.monotonic if type(loop).time is _ASYNCIO_TIME else loop.time
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


#: asyncio's own ``loop.time``, which only calls ``time.monotonic``: for a loop that keeps it (any
#: loop of asyncio's), the adapter reads ``time.monotonic`` directly, one call instead of two;
#: another loop (uvloop, a test's virtual clock) is asked its own ``time()``.
_ASYNCIO_TIME: Final = asyncio.BaseEventLoop.time

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
        steps = [step.for_handler(request) if type(step) is _Admission else step for step in self.stack]
        chain = compose(steps, handler)
        if request.match_info.http_exception is None:  # a route's handler, not a 404/405 made for this request
            if len(self) >= MAX_CHAINS:
                self.clear()
            with contextlib.suppress(TypeError):  # an unhashable handler: composed per request
                self[handler] = chain
        return chain


#: ``X-Request-Priority`` values as clients send them (``normal``), read with one look-up; any
#: other spelling is read by ``Priority.parse`` (case, whitespace).
_PRIORITIES: Final = {priority.value: priority for priority in Priority}


@dataclass(frozen=True, slots=True)
class _Admission:
    """Our ``ServerDeadline`` directly followed by our ``ServerPriority``, as one step.

    The rules are theirs, unchanged: the deadline from ``X-Request-Timeout`` (``inbound_timeout``,
    capped by ``max_timeout``), else the handler's default, else ``timeout``; a request with too
    little time left refused with ``ServerDeadline.refusal`` before the handler runs; the
    priority from ``X-Request-Priority``, else the default; with ``cancel_on_timeout`` the
    handler cancelled at the deadline. Both go into the context in one step (``CONTEXT``) instead
    of two ``set_context`` blocks. ``for_handler`` reads a handler's ``@aiohttp_timeout`` once
    per handler when the deadline step reads it with ``aiohttp_handler_timeout``.
    """

    # ``Any``: the middlewares import this package, so naming their types here, even for the type
    # checker only, would be an import cycle.
    deadline: Any  # middlewares.deadline.ServerDeadline
    priority: Any  # middlewares.priority.ServerPriority
    #: the adapter opens an exchange for each request: the deadline counts from its arrival time,
    #: which the adapter read, instead of reading the clock again
    arrival_on_exchange: bool = False
    #: seconds for a request without a usable header; ``None``: ``deadline``'s rule, per request
    default: float | None = None

    def for_handler(self, request: web.Request) -> _Admission:
        """This step for the handler of ``request`` (and every later request of that handler)."""
        if self.deadline.handler_timeout is not aiohttp_handler_timeout:
            return self  # the user's own rule may read anything of a request: asked per request
        if isinstance(request.match_info.handler, type):
            return self  # a web.View: its methods may differ
        seconds = aiohttp_handler_timeout(request)
        return dataclasses.replace(self, default=seconds if seconds is not None else self.deadline.timeout)

    def link(self, call_next: AiohttpHandler) -> AiohttpHandler:
        """The step with ``call_next`` bound (see ``compose``)."""
        from ..middlewares.deadline import inbound_timeout

        deadline, default, on_exchange = self.deadline, self.default, self.arrival_on_exchange
        max_timeout, threshold = deadline.max_timeout, deadline.low_timeout_threshold
        cancel = deadline.cancel_on_timeout
        default_priority = self.priority.default

        async def admitted(request: web.Request) -> web.StreamResponse:
            headers = request.headers
            value = headers.get(TIMEOUT_HEADER)
            seconds = None if value is None else inbound_timeout(value, max_timeout=max_timeout)
            if seconds is None:
                seconds = default if default is not None else deadline.default_timeout(request)
            if seconds <= 0 or seconds < threshold:
                raise deadline.refusal(request, seconds)
            value = headers.get(PRIORITY_HEADER)
            if value is None:
                priority = default_priority
            else:
                priority = _PRIORITIES.get(value) or Priority.parse(value) or default_priority
            exchange = CURRENT_EXCHANGE.get() if on_exchange else None
            if exchange is not None and exchange.clock is not None:
                at = exchange.started + seconds
            else:
                loop = asyncio.get_running_loop()
                at = (time.monotonic() if type(loop).time is _ASYNCIO_TIME else loop.time()) + seconds
            token = CONTEXT.set(Context(Deadline(at), priority))
            try:
                if not cancel:
                    return await call_next(request)
                async with within(at, request=request, message="handler cancelled at its deadline"):
                    return await call_next(request)
            finally:
                CONTEXT.reset(token)

        return admitted

    async def __call__(self, request: web.Request, call_next: AiohttpHandler, /) -> web.StreamResponse:
        return await self.link(call_next)(request)


def _fused(stack: tuple[ServerMiddleware, ...], observed: bool) -> tuple[ServerMiddleware, ...]:
    """``stack`` with each of our ``ServerDeadline`` directly followed by our ``ServerPriority``
    (exact types: a subclass may do more) replaced by one ``_Admission``; ``observed``: the
    adapter opens an exchange per request, with the arrival time on it."""
    from ..middlewares.deadline import ServerDeadline
    from ..middlewares.priority import ServerPriority

    fused: list[ServerMiddleware] = []
    for step in stack:
        previous = fused[-1] if fused else None
        if type(step) is ServerPriority and type(previous) is ServerDeadline:
            fused[-1] = _Admission(previous, step, arrival_on_exchange=observed)
        else:
            fused.append(step)
    return tuple(fused)


def _blind_types() -> tuple[type, ...]:
    """Our server steps that never look at the exchange."""
    from ..middlewares.deadline import ServerDeadline
    from ..middlewares.priority import ServerPriority
    from ..middlewares.shedding import LoadShedding

    return (_Admission, ServerDeadline, ServerPriority, LoadShedding)


def _answer(error: DeadlineExceededError | OverloadedError, expired_status: int) -> web.Response:
    if isinstance(error, DeadlineExceededError):
        return web.Response(status=expired_status, text="deadline exceeded")
    retry_after = max(math.ceil(error.retry_after), 0) if math.isfinite(error.retry_after) else 1
    return web.Response(status=503, text="overloaded", headers={"Retry-After": str(retry_after)})


def aiohttp_middleware_factory(
    *,
    timeout: float = 20.0,
    priority: Priority = Priority.NORMAL,
    low_timeout_threshold: float = LOW_TIMEOUT_THRESHOLD,
    max_timeout: float | None = None,
    cancel_on_timeout: bool = False,
    middlewares: Iterable[ServerMiddleware] = (),
    expired_status: int = 408,
    metrics_provider: MetricsProvider | None = None,
    client_header_name: str = SERVICE_NAME_HEADER,
    outer_middlewares: Iterable[ServerMiddleware] = (),
    tracing: bool = False,
    tracer_provider: Any = None,
) -> AiohttpMiddleware:
    """The standard server stack as one aiohttp middleware, outermost first::

        [tracing] -> outer_middlewares -> metrics -> deadline -> priority -> middlewares -> handler

    Options (times in seconds):
        timeout: deadline of a request carrying no ``X-Request-Timeout`` and whose handler has
            no ``@aiohttp_timeout``; default 20.
        priority: priority of a request carrying no (or an unknown) ``X-Request-Priority``;
            default NORMAL.
        low_timeout_threshold: a request with less time left is refused; default 0.005.
        max_timeout: cap on the deadline a client may ask for; default ``None`` (no cap).
        cancel_on_timeout: cancel the handler when the deadline passes; default ``False``.
        middlewares: your own server middlewares, run inside the built-in ones (they see the
            deadline and priority in ``get_context()``); default none.
        expired_status: the status answering an expired request; default 408.
        metrics_provider: records every request, refused ones included (e.g.
            ``PROMETHEUS_METRICS_PROVIDER``); default none.
        client_header_name: the header naming the calling service, given to our
            ``PrometheusMetricsProvider`` and ``ServerLog`` (copies of them, set to it); your
            own middlewares and providers are used as given; default ``X-Service-Name``.
        outer_middlewares: yours, outside everything but tracing, metrics included: the place
            for ``ServerLog()``, which then logs refused requests too; default none.
        tracing: a SERVER span per request (``middlewares.tracing.ServerTracing``), outermost,
            so that refused requests have one and ``ServerLog`` logs its ids; our own
            ``ServerLog`` and ``PrometheusMetricsProvider`` (copies of them) are given
            ``trace_ids``, so log events carry ``trace_id``/``span_id`` and histogram buckets an
            exemplar. Needs opentelemetry-api. Default ``False``: nothing of it is in the stack.
        tracer_provider: an OpenTelemetry ``TracerProvider`` for those spans; default ``None``:
            the global one. Only with ``tracing=True``.

    Bad values raise ``ValueError`` naming the parameter, here rather than at the first request.
    """
    # Imported here, not at the top: the package facade imports this module, and the
    # middlewares import the core through that package, so a top-level import would be circular.
    from ..middlewares.deadline import ServerDeadline
    from ..middlewares.log import ServerLog
    from ..middlewares.priority import ServerPriority
    from ..middlewares.prometheus import PrometheusMetricsProvider

    if not isinstance(priority, Priority):
        raise ValueError(f"priority must be a Priority (HIGH, NORMAL or LOW), got {priority!r}")
    check_header_name(client_header_name, "client_header_name")
    if not isinstance(tracing, bool):
        raise ValueError(f"tracing must be True or False, got {tracing!r}")
    if tracer_provider is not None and not tracing:
        raise ValueError("tracer_provider is used only with tracing=True")
    middlewares = _callables("middlewares", middlewares)
    outer_middlewares = _callables("outer_middlewares", outer_middlewares)
    # The header name goes to our own ServerLog and Prometheus provider only, by exact type: a
    # user's middleware (or provider, or subclass of ours) is used as given, the very instance.
    ours = (ServerLog, PrometheusMetricsProvider)
    provider = _with_client_header(metrics_provider, client_header_name, ours)
    outer_middlewares = tuple(_with_client_header(m, client_header_name, ours) for m in outer_middlewares)
    middlewares = tuple(_with_client_header(m, client_header_name, ours) for m in middlewares)
    traced: list[ServerMiddleware] = []
    if tracing:
        from ..middlewares.tracing import ServerTracing, with_trace_ids

        traced.append(ServerTracing(tracer_provider=tracer_provider, client_header_name=client_header_name))
        # Ours (by exact type, as above) read the active span's ids: logs and exemplars point at it.
        provider = with_trace_ids(provider) if provider is not None else None
        outer_middlewares = tuple(with_trace_ids(m) for m in outer_middlewares)
        middlewares = tuple(with_trace_ids(m) for m in middlewares)
    stack: list[ServerMiddleware] = [
        *traced,
        *outer_middlewares,
        *([provider.server_middleware()] if provider is not None else []),
        ServerDeadline(
            timeout=timeout,
            max_timeout=max_timeout,
            low_timeout_threshold=low_timeout_threshold,
            cancel_on_timeout=cancel_on_timeout,
            handler_timeout=aiohttp_handler_timeout,
        ),
        ServerPriority(default=priority),
        *middlewares,
    ]
    return aiohttp_server_middleware(stack, expired_status=expired_status)


def _callables(name: str, middlewares: Iterable[ServerMiddleware]) -> tuple[ServerMiddleware, ...]:
    stack = tuple(middlewares)
    for middleware in stack:
        if not callable(middleware):
            raise ValueError(f"{name} must be callables (request, call_next), got {middleware!r}")
    return stack


def _with_client_header(thing: Any, name: str, ours: tuple[type, ...]) -> Any:
    """``thing`` with ``client_header_name=name`` when it is one of ``ours`` (exactly: these are
    stateless frozen dataclasses, so a copy is as good), else ``thing`` itself."""
    if name == SERVICE_NAME_HEADER or type(thing) not in ours:
        return thing
    return dataclasses.replace(thing, client_header_name=name)
