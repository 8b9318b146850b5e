"""aio-request's small names: method and header constants, response aliases, endpoint providers."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeAlias

import yarl

from ..chain import Middleware
from ..errors import ContentTypeError
from ..http import Headers, HeadersLike, Request, Response, check_endpoint
from ..policy import DO_NOT_RETRY_HEADER
from ..propagation import ATTEMPT_HEADER, PRIORITY_HEADER, SERVICE_NAME_HEADER, TIMEOUT_HEADER

__all__ = [
    "EMPTY_HEADERS",
    "AsyncRequestEnricher",
    "ClosableResponse",
    "DelegateEndpointProvider",
    "DeprecatedAsyncRequestEnricher",
    "EmptyResponse",
    "EndpointProvider",
    "Header",
    "Method",
    "PathParameters",
    "QueryParameters",
    "RequestEnricher",
    "RequestStrategy",
    "StaticEndpointProvider",
    "UnexpectedContentTypeError",
]

#: No headers: the default of ``EmptyResponse`` (immutable, so one instance serves all).
EMPTY_HEADERS = Headers()

#: aio-request's name for the error ``Response.json()`` raises on a Content-Type that is not JSON.
UnexpectedContentTypeError = ContentTypeError

#: aio-request's type aliases: path parameters, query parameters, request enrichers.
PathParameters: TypeAlias = Mapping[str, Any]
QueryParameters: TypeAlias = "Mapping[str, Any] | Iterable[tuple[str, Any]]"
RequestEnricher: TypeAlias = Callable[[Request], Request]
AsyncRequestEnricher: TypeAlias = Callable[[Request], Awaitable[Request]]
#: The older ``(request, emit_system_headers) -> Awaitable[Request]`` enricher of ``setup_v2``.
DeprecatedAsyncRequestEnricher: TypeAlias = Callable[[Request, bool], Awaitable[Request]]

#: aio-request's name for a response the caller must close; ours all are.
ClosableResponse: TypeAlias = Response

#: aio-request's name for a strategy; ours is any middleware that may call ``call_next`` repeatedly.
RequestStrategy: TypeAlias = Middleware[Request, Response]


class Method:
    """HTTP method names."""

    GET = "GET"
    HEAD = "HEAD"
    OPTIONS = "OPTIONS"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


class Header:
    """Header names the library reads or writes (look-ups are case-insensitive anyway)."""

    CONTENT_TYPE = "Content-Type"
    CONTENT_LENGTH = "Content-Length"
    LOCATION = "Location"
    RETRY_AFTER = "Retry-After"
    X_REQUEST_TIMEOUT = TIMEOUT_HEADER
    X_REQUEST_PRIORITY = PRIORITY_HEADER
    X_REQUEST_ATTEMPT = ATTEMPT_HEADER
    X_SERVICE_NAME = SERVICE_NAME_HEADER
    X_DO_NOT_RETRY = DO_NOT_RETRY_HEADER
    X_CIRCUIT_BREAKER = "X-Circuit-Breaker"


class EmptyResponse(Response):
    """A response with no body: the synthetic answers of the facade (408, 488, 489, 502), as
    aio-request's: ``status``, ``headers`` (none by default) and ``elapsed`` (seconds, 0)."""

    __slots__ = ()

    def __init__(self, *, status: int, headers: HeadersLike = EMPTY_HEADERS, elapsed: float = 0) -> None:
        super().__init__(status, headers, b"", elapsed=elapsed)


class EndpointProvider(abc.ABC):
    """Where a client's calls go, resolved per call (inside the call's deadline)."""

    __slots__ = ()

    @abc.abstractmethod
    async def get(self) -> yarl.URL:
        """The endpoint: an absolute http(s) URL, as a ``yarl.URL`` (a ``str`` is taken too)."""


class StaticEndpointProvider(EndpointProvider):
    """Always the same endpoint, validated once.

    Options:
        endpoint: an absolute http(s) URL, a ``str`` or a ``yarl.URL``; required.
    """

    __slots__ = ("_endpoint", "_url")

    def __init__(self, endpoint: str | yarl.URL) -> None:
        check_endpoint(endpoint)  # a bad endpoint fails here, not at the first call
        self._endpoint = str(endpoint)
        self._url = endpoint if isinstance(endpoint, yarl.URL) else yarl.URL(self._endpoint)

    @property
    def endpoint(self) -> str:
        """The endpoint as text."""
        return self._endpoint

    async def get(self) -> yarl.URL:
        return self._url


class DelegateEndpointProvider(EndpointProvider):
    """The endpoint a function returns: service discovery, a config lookup.

    The function is called once per call, and its answer checked.

    Options:
        endpoint_delegate: ``() -> endpoint``, sync or async, the endpoint a ``str`` or a
            ``yarl.URL``; required.
    """

    __slots__ = ("_delegate",)

    def __init__(
        self, endpoint_delegate: Callable[[], str | yarl.URL] | Callable[[], Awaitable[str | yarl.URL]]
    ) -> None:
        if not callable(endpoint_delegate):
            raise ValueError(f"endpoint_delegate (the endpoint provider) must be callable, got {endpoint_delegate!r}")
        self._delegate = endpoint_delegate

    async def get(self) -> yarl.URL:
        endpoint = self._delegate()
        if inspect.isawaitable(endpoint):
            endpoint = await endpoint
        return endpoint if isinstance(endpoint, yarl.URL) else yarl.URL(str(endpoint))
