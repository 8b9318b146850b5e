"""``Pipeline`` (middlewares over a transport) and ``Client`` (an endpoint plus a pipeline).
Concerns live in middlewares, not here."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from types import TracebackType

from ._transport import Transport
from .chain import Middleware, checked_middlewares, compose
from .extensions import STRATEGY
from .http import Request, Response, check_endpoint, new_request
from .propagation import Deadline, Priority

__all__ = ["Client", "Pipeline", "ResponseContext"]


class Pipeline:
    """Client middlewares stacked over a transport: ``await pipeline(request)``.

    The terminal handler is ``transport.send_request``: the request goes to its ``endpoint``
    within what is left of ``request.deadline`` (no bound when it has none). An expired
    deadline fails with ``DeadlineExceededError`` before touching the network.

    Options:
        transport: a ``Transport`` (e.g. ``AioHttpTransport(session)``); required.
        middlewares: the client middlewares, first outermost; a stack with a deadline or a
            priority but nothing that writes them is refused (``checked_middlewares``);
            default none.
    """

    __slots__ = ("_handler", "middlewares", "transport")

    def __init__(self, transport: Transport, middlewares: Iterable[Middleware[Request, Response]] = ()) -> None:
        if not isinstance(transport, Transport):
            raise ValueError(f"transport must be a Transport such as AioHttpTransport(session), got {transport!r}")
        self.transport = transport
        self.middlewares: tuple[Middleware[Request, Response], ...] = checked_middlewares(middlewares)
        self._handler = compose(self.middlewares, transport.send_request)

    def __repr__(self) -> str:
        names = [getattr(m, "__qualname__", type(m).__qualname__) for m in self.middlewares]
        return f"Pipeline({' -> '.join([*names, type(self.transport).__qualname__])})"

    def __call__(self, request: Request) -> Awaitable[Response]:
        return self._handler(request)

    async def aclose(self) -> None:
        """Close the transport (which leaves a user's own session open)."""
        await self.transport.aclose()

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class ResponseContext:
    """``async with client.request(...) as response:`` sends on entry and closes on exit."""

    __slots__ = ("_pipeline", "_request", "_response")

    def __init__(self, pipeline: Pipeline, request: Request) -> None:
        self._pipeline = pipeline
        self._request = request
        self._response: Response | None = None

    async def __aenter__(self) -> Response:
        self._response = await self._pipeline(self._request)
        return self._response

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._response is not None:
            await self._response.close()


class Client:
    """Sends requests to one ``endpoint`` (an absolute http(s) URL) through ``pipeline``.

    Relative request URLs are appended under the endpoint's path: with endpoint
    ``http://host/api/`` (or ``http://host/api``), ``get("users/1")`` and ``get("/users/1")``
    both go to ``http://host/api/users/1``; an absolute request URL is sent as is.

    Options:
        endpoint: an absolute http(s) URL, checked now; ``None`` when a middleware resolves it
            per call (an endpoint provider); required.
        pipeline: the ``Pipeline`` every request goes through; required.
    """

    __slots__ = ("_takes_strategy", "endpoint", "pipeline")

    def __init__(self, endpoint: object, pipeline: Pipeline) -> None:
        if endpoint is not None:
            check_endpoint(endpoint)  # now, not at the first call
        if not isinstance(pipeline, Pipeline):
            raise ValueError(f"pipeline must be a Pipeline, got {pipeline!r}")
        self.endpoint = None if endpoint is None else str(endpoint)
        self.pipeline = pipeline
        # A step that runs the strategy chosen per call (``runs_chosen_strategy``: ``PerCallStrategy``).
        self._takes_strategy = any(getattr(m, "runs_chosen_strategy", False) for m in pipeline.middlewares)

    def request(
        self,
        request: Request,
        *,
        deadline: Deadline | None = None,
        priority: Priority | None = None,
        strategy: Middleware[Request, Response] | None = None,
    ) -> ResponseContext:
        """Send ``request``; the response is closed when the ``async with`` block ends.

        ``strategy`` (for example ``sequential_strategy()``) replaces the pipeline's default
        strategy for this call, for any method: choosing one is the caller's explicit choice. It
        needs a ``PerCallStrategy`` in the pipeline to run it (``setup()``'s has one); without
        one, ``ValueError`` says so rather than sending the call with the strategy ignored.
        """
        # Every call starts here: a copy of the request's fields with these three changed,
        # which need no checks (``Request.replace`` would take the same path, with more steps).
        request = new_request(
            {
                **request.__dict__,
                "endpoint": self.endpoint,
                "deadline": deadline if deadline is not None else request.deadline,
                "priority": priority if priority is not None else request.priority,
            }
        )
        if strategy is not None:
            if not self._takes_strategy:
                raise ValueError(
                    "strategy= needs a PerCallStrategy in the pipeline to run it, and this one has none:"
                    f" {self.pipeline!r}; put PerCallStrategy() where the strategy goes"
                )
            request = STRATEGY.on(request, strategy)
        return ResponseContext(self.pipeline, request)

    async def aclose(self) -> None:
        await self.pipeline.aclose()
