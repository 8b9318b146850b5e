"""aio-request's per-attempt modules (``RequestModule`` and the three ``setup()`` used) and the
small types around its strategies, for code written against them.

A ``RequestModule`` is aio-request's middleware shape, ``execute(next, *, endpoint, request,
deadline, priority)``. Ours is ``(request, call_next)``, with those three values on the request;
``as_middleware(module)`` adapts one to the other, so a module someone wrote for aio-request
runs in ``setup(middlewares=[...])``. ``build_pipeline`` folds modules as aio-request's does.
"""

from __future__ import annotations

import abc
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeAlias, TypeVar

import yarl

from .._transport import Transport
from ..chain import Handler
from ..errors import PipelineError
from ..http import Request, Response
from ..policy import ResponseVerdict
from ..propagation import DEFAULT_TIMEOUT, Deadline, Priority
from ._familiar import EmptyResponse, Header
from ._synthetic import synthetic_response

__all__ = [
    "BypassModule",
    "LowTimeoutModule",
    "NextModuleFunc",
    "RequestModule",
    "ResponseWithVerdict",
    "SendRequestFunc",
    "TransportModule",
    "as_middleware",
    "build_pipeline",
]

#: The rest of a module pipeline: ``(endpoint, request, deadline, priority) -> response``.
NextModuleFunc: TypeAlias = Callable[[yarl.URL, Request, Deadline, Priority], Awaitable[Response]]

ResponseT = TypeVar("ResponseT")


class ResponseWithVerdict(Generic[ResponseT]):
    """A response and the classifier's verdict on it; ``close()`` closes the response."""

    __slots__ = ("response", "verdict")

    def __init__(self, response: ResponseT, verdict: ResponseVerdict) -> None:
        self.response = response
        self.verdict = verdict

    async def close(self) -> None:
        close = getattr(self.response, "close", None)
        if close is not None:
            await close()


#: aio-request's per-attempt send function, as its strategies receive it.
SendRequestFunc: TypeAlias = Callable[[yarl.URL, Request, Deadline, Priority], Awaitable[ResponseWithVerdict[Response]]]


class RequestModule(abc.ABC):
    """aio-request's per-attempt middleware: do something, then ``await next(endpoint,
    request, deadline, priority)`` (or answer without calling it)."""

    __slots__ = ()

    @abc.abstractmethod
    async def execute(
        self,
        next: NextModuleFunc,  # aio-request's parameter name (it shadows the builtin)
        *,
        endpoint: yarl.URL,
        request: Request,
        deadline: Deadline,
        priority: Priority,
    ) -> Response:
        """Handle one attempt."""


class BypassModule(RequestModule):
    """Does nothing: ``build_pipeline`` leaves it out."""

    __slots__ = ()

    async def execute(
        self,
        next: NextModuleFunc,
        *,
        endpoint: yarl.URL,
        request: Request,
        deadline: Deadline,
        priority: Priority,
    ) -> Response:
        return await next(endpoint, request, deadline, priority)


class LowTimeoutModule(RequestModule):
    """Answers ``408`` with ``X-Do-Not-Retry: 1`` when the attempt has too little time left.

    It answers so, without going further, when the attempt's deadline has passed or has less
    than ``low_timeout_threshold`` seconds left; the answer is final: no strategy retries it.

    Options:
        low_timeout_threshold: seconds, finite and >= 0; required.
    """

    __slots__ = ("_threshold",)

    def __init__(self, low_timeout_threshold: float) -> None:
        if not 0 <= low_timeout_threshold < float("inf"):
            raise ValueError(f"low_timeout_threshold must be finite seconds >= 0, got {low_timeout_threshold!r}")
        self._threshold = low_timeout_threshold

    async def execute(
        self,
        next: NextModuleFunc,
        *,
        endpoint: yarl.URL,
        request: Request,
        deadline: Deadline,
        priority: Priority,
    ) -> Response:
        if deadline.expired or deadline.timeout < self._threshold:
            return EmptyResponse(status=408, headers={Header.X_DO_NOT_RETRY: "1"})
        return await next(endpoint, request, deadline, priority)


class TransportModule(RequestModule):
    """The last module: system headers, the enricher, then ``transport``.

    It writes ``X-Request-Timeout``, ``X-Request-Priority`` and ``X-Request-Attempt`` (with
    ``emit_system_headers``), runs ``request_enricher`` (sync or async), then sends through
    ``transport``, answering its failures as the facade's synthetic responses (408, 488, 489).

    Options:
        transport: where the attempt is sent, within the seconds left of its deadline; required.
        emit_system_headers: write the system headers before the enricher runs; required.
        request_enricher: ``f(request)``, sync or async, applied to every attempt, or ``None``
            for none; required.
    """

    __slots__ = ("_emit", "_enricher", "_transport")

    def __init__(
        self,
        transport: Transport,
        *,
        emit_system_headers: bool,
        request_enricher: Callable[[Request], Request | Awaitable[Request]] | None,
    ) -> None:
        self._transport = transport
        self._emit = emit_system_headers
        self._enricher = request_enricher

    async def execute(
        self,
        next: NextModuleFunc,  # the last module: nothing follows it
        *,
        endpoint: yarl.URL,
        request: Request,
        deadline: Deadline,
        priority: Priority,
    ) -> Response:
        if self._emit:
            from ..middlewares.wire import system_headers  # imported late: middlewares import the core

            request = request.replace(headers=system_headers(request.replace(deadline=deadline, priority=priority)))
        if self._enricher is not None:
            enriched = self._enricher(request)
            request = await enriched if inspect.isawaitable(enriched) else enriched
        try:
            return await self._transport.send(str(endpoint), request, deadline.timeout)
        except PipelineError as error:
            response = synthetic_response(error)
            if response is None:
                raise
            return response


def build_pipeline(modules: Sequence[RequestModule]) -> NextModuleFunc:
    """``modules`` folded into one function, the first outermost; ``BypassModule``s are left
    out, and calling past the last module raises ``NotImplementedError``, as aio-request's."""

    async def nothing_left(endpoint: yarl.URL, request: Request, deadline: Deadline, priority: Priority) -> Response:
        raise NotImplementedError("the last module must answer (TransportModule does)")

    def step(module: RequestModule, rest: NextModuleFunc) -> NextModuleFunc:
        def run(endpoint: yarl.URL, request: Request, deadline: Deadline, priority: Priority) -> Awaitable[Response]:
            return module.execute(rest, endpoint=endpoint, request=request, deadline=deadline, priority=priority)

        return run

    pipeline: NextModuleFunc = nothing_left
    for module in reversed(modules):
        if not isinstance(module, BypassModule):
            pipeline = step(module, pipeline)
    return pipeline


@dataclass(frozen=True, slots=True)
class _ModuleMiddleware:
    """A ``RequestModule`` as one of our middlewares: the endpoint, deadline and priority it is
    given are the request's, and those it passes on become the request's."""

    module: RequestModule

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        async def rest(endpoint: yarl.URL, passed: Request, deadline: Deadline, priority: Priority) -> Response:
            return await call_next(passed.replace(endpoint=str(endpoint), deadline=deadline, priority=priority))

        deadline = request.deadline if request.deadline is not None else Deadline.from_timeout(DEFAULT_TIMEOUT)
        return await self.module.execute(
            rest,
            endpoint=yarl.URL(request.endpoint or ""),
            request=request,
            deadline=deadline,
            priority=request.priority if request.priority is not None else Priority.NORMAL,
        )


def as_middleware(middleware: Any) -> Any:
    """``middleware`` as one of ours: a ``RequestModule`` adapted, anything else as it is."""
    return _ModuleMiddleware(middleware) if isinstance(middleware, RequestModule) else middleware
