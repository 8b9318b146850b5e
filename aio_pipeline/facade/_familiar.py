"""aio-request's small names: method and header constants, response aliases, endpoint providers."""

from __future__ import annotations

import abc
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from .._classify import DO_NOT_RETRY_HEADER
from .._headers import HeadersLike
from .._pipeline import Middleware
from .._request import Request
from .._response import Response
from .._url import check_endpoint
from .._wire import ATTEMPT_HEADER, PRIORITY_HEADER, SERVICE_NAME_HEADER, TIMEOUT_HEADER

__all__ = [
    "ClosableResponse",
    "DelegateEndpointProvider",
    "EmptyResponse",
    "EndpointProvider",
    "Header",
    "Method",
    "RequestStrategy",
    "StaticEndpointProvider",
]

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
    RETRY_AFTER = "Retry-After"
    X_REQUEST_TIMEOUT = TIMEOUT_HEADER
    X_REQUEST_PRIORITY = PRIORITY_HEADER
    X_REQUEST_ATTEMPT = ATTEMPT_HEADER
    X_SERVICE_NAME = SERVICE_NAME_HEADER
    X_DO_NOT_RETRY = DO_NOT_RETRY_HEADER
    X_CIRCUIT_BREAKER = "X-Circuit-Breaker"


class EmptyResponse(Response):
    """A response with no body: the synthetic answers of the facade (408, 488, 489, 502)."""

    __slots__ = ()

    def __init__(self, *, status: int, headers: HeadersLike = None) -> None:
        super().__init__(status, headers, b"")


class EndpointProvider(abc.ABC):
    """Where a client's calls go, resolved per call (inside the call's deadline)."""

    @abc.abstractmethod
    async def get(self) -> str:
        """The endpoint: an absolute http(s) URL (a ``yarl.URL`` is fine too)."""


class StaticEndpointProvider(EndpointProvider):
    """Always the same endpoint, validated once."""

    __slots__ = ("_endpoint",)

    def __init__(self, endpoint: object) -> None:
        check_endpoint(endpoint)  # a bad endpoint fails here, not at the first call
        self._endpoint = str(endpoint)

    @property
    def endpoint(self) -> str:
        return self._endpoint

    async def get(self) -> str:
        return self._endpoint


class DelegateEndpointProvider(EndpointProvider):
    """The endpoint a function returns (sync or async): service discovery, a config lookup."""

    __slots__ = ("_provider",)

    def __init__(self, provider: Callable[[], object] | Callable[[], Awaitable[object]]) -> None:
        if not callable(provider):
            raise ValueError(f"provider must be callable, got {provider!r}")
        self._provider = provider

    async def get(self) -> str:
        endpoint = self._provider()
        if inspect.isawaitable(endpoint):
            endpoint = await endpoint
        return str(endpoint)
