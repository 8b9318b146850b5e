"""``HttpxTransport``: sends through a user's ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httpx

from .._errors import (
    ConnectError,
    DeadlineExceededError,
    InvalidRequestError,
    TooManyRedirectsError,
    TransportError,
)
from .._headers import Headers
from .._request import Request
from .._response import Response
from .._transport import Transport

if TYPE_CHECKING:
    from .._metrics import MetricsProvider

__all__ = ["HttpxTransport"]


class HttpxTransport(Transport):
    """A transport over ``async_client``, which stays the caller's to close.

    Redirects are followed here, one hop at a time, so each request's own ``allow_redirects``
    and ``max_redirects`` apply (httpx only has a per-client limit). The body is read inside
    the attempt, so the deadline bounds it. ``metrics_provider`` is for ``setup()`` to use.
    """

    __slots__ = ("_client",)

    def __init__(self, async_client: httpx.AsyncClient, *, metrics_provider: MetricsProvider | None = None) -> None:
        self.metrics_provider = metrics_provider
        self._client = async_client

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        scope = asyncio.timeout(timeout)
        try:
            outgoing = self._client.build_request(
                request.method,
                request.absolute_url(endpoint),
                headers=request.headers.multi_items(),
                content=request.body or None,
            )
            async with scope:
                return await self._send(outgoing, request)
        except TimeoutError as error:
            if scope.expired():
                raise DeadlineExceededError(f"no response within {timeout:.3f}s", request=request) from error
            raise TransportError(f"timed out: {error!r}", request=request) from error
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as error:
            raise ConnectError(f"cannot connect: {error}", request=request) from error
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            raise InvalidRequestError(f"invalid URL: {error}", request=request) from error
        except (httpx.TransportError, httpx.DecodingError) as error:
            raise TransportError(f"{type(error).__name__}: {error}", request=request) from error

    async def _send(self, outgoing: httpx.Request, request: Request) -> Response:
        redirects = 0
        while True:
            response = await self._client.send(outgoing, follow_redirects=False, stream=True)
            try:
                next_request = response.next_request if request.allow_redirects else None
                if next_request is None:
                    body = await response.aread()
                    return Response(
                        response.status_code,
                        Headers.from_pairs(response.headers.multi_items()),
                        body,
                        url=str(response.url),
                    )
            finally:
                await response.aclose()
            redirects += 1
            if redirects > request.max_redirects:
                raise TooManyRedirectsError(f"more than {request.max_redirects} redirects", request=request)
            outgoing = next_request
