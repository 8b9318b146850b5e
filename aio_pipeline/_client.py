"""``Client``: an endpoint plus a pipeline. Concerns live in middlewares, not here."""

from __future__ import annotations

from types import TracebackType

from ._deadline import Deadline
from ._pipeline import Middleware, Pipeline
from ._priority import Priority
from ._request import Request, new_request
from ._response import Response
from ._url import check_endpoint

__all__ = ["STRATEGY_EXTENSION", "Client", "ResponseContext"]

#: The request extension carrying a strategy chosen for one call; ``PerCallStrategy`` (in the
#: client's pipeline, where the strategy goes) runs it instead of its default.
STRATEGY_EXTENSION = "aio_pipeline.strategy"


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
    both go to ``http://host/api/users/1``; an absolute request URL is sent as is. ``endpoint``
    may be ``None`` when a middleware resolves it per call (an endpoint provider).
    """

    __slots__ = ("endpoint", "pipeline")

    def __init__(self, endpoint: object, pipeline: Pipeline) -> None:
        if endpoint is not None:
            check_endpoint(endpoint)  # now, not at the first call
        if not isinstance(pipeline, Pipeline):
            raise ValueError(f"pipeline must be a Pipeline, got {pipeline!r}")
        self.endpoint = None if endpoint is None else str(endpoint)
        self.pipeline = pipeline

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
        strategy for this call, for any method: choosing one is the caller's explicit choice.
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
            request = request.with_extension(STRATEGY_EXTENSION, strategy)
        return ResponseContext(self.pipeline, request)

    async def aclose(self) -> None:
        await self.pipeline.aclose()
