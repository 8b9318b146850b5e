"""The standard server stack, assembled for aiohttp: ``aiohttp_middleware_factory``.

aio-request's name for "the server side of everything": tracing, your outer middlewares,
metrics, deadline, priority and your middlewares, handed to the leaf adapter
(``aio_pipeline.server.aiohttp_server_middleware``) as one aiohttp middleware. Our own deadline
and priority steps, when they stand together as here, run fused as one (``_Admission``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final

from aiohttp import web
from aiohttp.typedefs import Handler as AiohttpHandler
from aiohttp.typedefs import Middleware as AiohttpMiddleware

from ..chain import checked_middlewares
from ..http import check_header_name
from ..middlewares.deadline import ServerDeadline, inbound_timeout
from ..middlewares.log import ServerLog
from ..middlewares.priority import ServerPriority
from ..middlewares.prometheus import PrometheusMetricsProvider
from ..middlewares.tracing import ServerTracing, with_trace_ids
from ..observe import CURRENT_EXCHANGE, EXPIRED_STATUS
from ..propagation import (
    CONTEXT,
    DEFAULT_TIMEOUT,
    LOW_TIMEOUT_THRESHOLD,
    PRIORITY_HEADER,
    SERVICE_NAME_HEADER,
    TIMEOUT_HEADER,
    Context,
    Deadline,
    Priority,
    clock_of,
    within,
)
from ..server.aiohttp import ServerMiddleware, aiohttp_handler_timeout, aiohttp_server_middleware, observes

if TYPE_CHECKING:
    from ..observe import MetricsProvider

__all__ = ["aiohttp_middleware_factory"]


def aiohttp_middleware_factory(
    *,
    timeout: float = DEFAULT_TIMEOUT,
    priority: Priority = Priority.NORMAL,
    low_timeout_threshold: float = LOW_TIMEOUT_THRESHOLD,
    max_timeout: float | None = None,
    cancel_on_timeout: bool = False,
    middlewares: Iterable[ServerMiddleware] = (),
    expired_status: int = EXPIRED_STATUS,
    metrics_provider: MetricsProvider | None = None,
    client_header_name: str = SERVICE_NAME_HEADER,
    outer_middlewares: Iterable[ServerMiddleware] = (),
    tracing: bool = False,
    tracer_provider: Any = None,
) -> AiohttpMiddleware:
    """The standard server stack as one aiohttp middleware, outermost first::

        [tracing] -> outer_middlewares -> metrics -> deadline -> priority -> middlewares -> handler

    Options:
        timeout: deadline of a request carrying no ``X-Request-Timeout`` and whose handler has
            no ``@aiohttp_timeout``, seconds; default 20.
        priority: priority of a request carrying no (or an unknown) ``X-Request-Priority``;
            default NORMAL.
        low_timeout_threshold: a request with less time left is refused, seconds; default
            0.005 (5 ms).
        max_timeout: cap on the deadline a client may ask for, seconds; default ``None`` (no cap).
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
            exemplar. Needs opentelemetry-api; default ``False``: nothing of it is in the stack.
        tracer_provider: an OpenTelemetry ``TracerProvider`` for those spans; default ``None``:
            the global one. Only with ``tracing=True``.

    Bad values raise ``ValueError`` naming the parameter, here rather than at the first request.
    """
    if not isinstance(priority, Priority):
        raise ValueError(f"priority must be a Priority (HIGH, NORMAL or LOW), got {priority!r}")
    check_header_name(client_header_name, "client_header_name")
    if not isinstance(tracing, bool):
        raise ValueError(f"tracing must be True or False, got {tracing!r}")
    if tracer_provider is not None and not tracing:
        raise ValueError("tracer_provider is used only with tracing=True")
    middlewares = checked_middlewares(middlewares, "middlewares")
    outer_middlewares = checked_middlewares(outer_middlewares, "outer_middlewares")
    # The header name goes to our own ServerLog and Prometheus provider only, by exact type: a
    # user's middleware (or provider, or subclass of ours) is used as given, the very instance.
    ours = (ServerLog, PrometheusMetricsProvider)
    provider = _with_client_header(metrics_provider, client_header_name, ours)
    outer_middlewares = tuple(_with_client_header(m, client_header_name, ours) for m in outer_middlewares)
    middlewares = tuple(_with_client_header(m, client_header_name, ours) for m in middlewares)
    traced: list[ServerMiddleware] = []
    if tracing:
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
    return aiohttp_server_middleware(_fused(tuple(stack), observes(stack)), expired_status=expired_status)


def _with_client_header(thing: Any, name: str, ours: tuple[type, ...]) -> Any:
    """``thing`` with ``client_header_name=name`` when it is one of ``ours`` (exactly: these are
    stateless frozen dataclasses, so a copy is as good), else ``thing`` itself."""
    if name == SERVICE_NAME_HEADER or type(thing) not in ours:
        return thing
    return dataclasses.replace(thing, client_header_name=name)


#: ``X-Request-Priority`` values as clients send them (``normal``), read with one look-up; any
#: other spelling is read by ``Priority.parse`` (case, whitespace).
_PRIORITIES: Final = {priority.value: priority for priority in Priority}


@dataclass(frozen=True, slots=True)
class _Admission:
    """Our ``ServerDeadline`` directly followed by our ``ServerPriority``, as one step (the
    standard stack's hot path: one context entry per request instead of two).

    The rules are theirs, unchanged: the deadline from ``X-Request-Timeout`` (``inbound_timeout``,
    capped by ``max_timeout``), else the handler's default, else ``timeout``; a request with too
    little time left refused with ``ServerDeadline.refusal`` before the handler runs; the
    priority from ``X-Request-Priority``, else the default; with ``cancel_on_timeout`` the
    handler cancelled at the deadline. Both go into the context in one step (``CONTEXT``) instead
    of two ``set_context`` blocks. ``for_handler`` reads a handler's ``@aiohttp_timeout`` once
    per handler when the deadline step reads it with ``aiohttp_handler_timeout``.
    """

    deadline: ServerDeadline
    priority: ServerPriority
    #: never reads the exchange itself (see ``aiohttp_server_middleware``)
    observes_exchange: ClassVar[bool] = False
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
                at = clock_of(asyncio.get_running_loop())() + seconds
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
    fused: list[ServerMiddleware] = []
    for step in stack:
        previous = fused[-1] if fused else None
        if type(step) is ServerPriority and type(previous) is ServerDeadline:
            fused[-1] = _Admission(previous, step, arrival_on_exchange=observed)
        else:
            fused.append(step)
    return tuple(fused)
