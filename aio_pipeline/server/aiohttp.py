"""Our server middlewares as one ``aiohttp.web`` middleware; the only server module importing aiohttp.

    app = web.Application(middlewares=[aiohttp_middleware_factory(timeout=10, max_timeout=30)])

The server middlewares share the client's shape, ``(request, call_next)``: here ``request`` is
the ``web.Request`` and the terminal handler is the application's. They raise the library's
errors to refuse work; this adapter answers them:

    DeadlineExceededError   ``expired_status`` (408 by default, as aio-request)
    OverloadedError         503 with ``Retry-After`` (whole seconds, rounded up)

so a bad ``X-Request-Timeout`` or an expired deadline never becomes a 500. A
``DeadlineExceededError`` escaping the handler (an outbound call ran out of the inherited
deadline) is answered the same way: the request's deadline is spent either way.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from aiohttp import web
from aiohttp.typedefs import Handler as AiohttpHandler
from aiohttp.typedefs import Middleware as AiohttpMiddleware

from .._deadline import LOW_TIMEOUT_THRESHOLD
from .._errors import DeadlineExceededError, OverloadedError
from .._pipeline import Middleware, compose
from .._priority import Priority
from .._wire import SERVICE_NAME_HEADER

if TYPE_CHECKING:
    from .._metrics import MetricsProvider

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
    middlewares: Iterable[ServerMiddleware], *, expired_status: int = 408
) -> AiohttpMiddleware:
    """One aiohttp middleware running ``middlewares`` (first outermost) around each handler.

    Our errors become responses: ``DeadlineExceededError`` -> ``expired_status`` (default
    408), ``OverloadedError`` -> 503 with ``Retry-After``. Every other exception, aiohttp's
    ``HTTPException`` included, passes through untouched. Everything runs in the request's
    own task, so context set by a middleware is seen by the handler.
    """
    if not isinstance(expired_status, int) or not 400 <= expired_status <= 599:
        raise ValueError(f"expired_status must be an HTTP error status (400-599), got {expired_status!r}")
    stack = _callables("middlewares", middlewares)

    @web.middleware
    async def aio_pipeline_middleware(request: web.Request, handler: AiohttpHandler) -> web.StreamResponse:
        try:
            # aiohttp hands over the handler per request (the route's, wrapped in any inner
            # middlewares), so the chain is folded here: one small closure per middleware,
            # as aiohttp itself does with functools.partial.
            return await compose(stack, handler)(request)
        except DeadlineExceededError:
            return web.Response(status=expired_status, text="deadline exceeded")
        except OverloadedError as error:
            retry_after = max(math.ceil(error.retry_after), 0) if math.isfinite(error.retry_after) else 1
            return web.Response(status=503, text="overloaded", headers={"Retry-After": str(retry_after)})

    return aio_pipeline_middleware


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
) -> AiohttpMiddleware:
    """The standard server stack as one aiohttp middleware, outermost first::

        outer_middlewares -> metrics -> deadline -> priority -> middlewares -> handler

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
        client_header_name: the header naming the calling service, given to the metrics
            provider and to outer and inner middlewares that have a ``client_header_name``
            field (``ServerLog``); default ``X-Service-Name``.
        outer_middlewares: yours, outside everything, metrics included: the place for
            ``ServerLog()``, which then logs refused requests too; default none.

    Bad values raise ``ValueError`` naming the parameter, here rather than at the first request.
    """
    # Imported here, not at the top: the package facade imports this module, and the
    # middlewares import the core through that package, so a top-level import would be circular.
    from middlewares.deadline import ServerDeadline
    from middlewares.priority import ServerPriority

    if not isinstance(priority, Priority):
        raise ValueError(f"priority must be a Priority (HIGH, NORMAL or LOW), got {priority!r}")
    if not isinstance(client_header_name, str) or not client_header_name:
        raise ValueError(f"client_header_name must be a header name, got {client_header_name!r}")
    middlewares = _callables("middlewares", middlewares)
    outer_middlewares = _callables("outer_middlewares", outer_middlewares)
    provider = _with_client_header(metrics_provider, client_header_name)
    stack: list[ServerMiddleware] = [
        *(_with_client_header(m, client_header_name) for m in outer_middlewares),
        *([provider.server_middleware()] if provider is not None else []),
        ServerDeadline(
            timeout=timeout,
            max_timeout=max_timeout,
            low_timeout_threshold=low_timeout_threshold,
            cancel_on_timeout=cancel_on_timeout,
            handler_timeout=aiohttp_handler_timeout,
        ),
        ServerPriority(default=priority),
        *(_with_client_header(m, client_header_name) for m in middlewares),
    ]
    return aiohttp_server_middleware(stack, expired_status=expired_status)


def _callables(name: str, middlewares: Iterable[ServerMiddleware]) -> tuple[ServerMiddleware, ...]:
    stack = tuple(middlewares)
    for middleware in stack:
        if not callable(middleware):
            raise ValueError(f"{name} must be callables (request, call_next), got {middleware!r}")
    return stack


def _with_client_header(thing: Any, name: str) -> Any:
    """``thing`` with its ``client_header_name`` field set to ``name``, when it has one."""
    if name == SERVICE_NAME_HEADER or not dataclasses.is_dataclass(thing) or isinstance(thing, type):
        return thing
    if any(f.name == "client_header_name" for f in dataclasses.fields(thing)):
        return dataclasses.replace(thing, client_header_name=name)
    return thing
