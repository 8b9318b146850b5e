"""``HttpxTransport``: sends through a user's ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from .._deadline import within
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

T = TypeVar("T")


async def _cancelled_once(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await ``coroutine`` in a task of its own that is cancelled at most once.

    httpcore releases a cancelled request's connection under anyio shields, which a second
    native ``task.cancel()`` breaks through, leaving the connection checked out of the pool for
    good (encode/httpcore#830, #922). A hedge gets exactly that: its own timeout and the
    strategy's TaskGroup both cancel it. However often the caller is cancelled, the inner task
    gets one cancellation and is awaited to the end of its cleanup; then the caller's
    cancellation goes on. Any response it finished with owns nothing: its body is read.
    """
    task = asyncio.get_running_loop().create_task(coroutine)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the caller's cancellation is what propagates
        raise


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
        try:
            outgoing = self._client.build_request(
                request.method,
                request.absolute_url(endpoint),
                headers=request.headers.multi_items(),
                content=request.body or None,
            )
            port = outgoing.url.port
            if port is not None and not 0 < port < 65536:  # else anyio fails with an ExceptionGroup
                raise InvalidRequestError(f"invalid URL: port {port} out of range", request=request)
            async with within.after(timeout, request=request, message="no response"):
                return await _cancelled_once(self._send(outgoing, request))
        except DeadlineExceededError:
            raise
        except TimeoutError as error:  # httpx's own timeouts are TransportErrors; anything else
            raise TransportError(f"timed out: {error!r}", request=request) from error
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError) as error:
            raise ConnectError(f"cannot connect: {error}", request=request) from error
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            raise InvalidRequestError(f"invalid URL: {error}", request=request) from error
        except httpx.LocalProtocolError as error:  # h11 refused what we asked it to send: a bad header
            raise InvalidRequestError(f"httpx refused the request: {error}", request=request) from error
        except UnicodeEncodeError as error:  # httpx encodes header names and values as ASCII
            raise InvalidRequestError(f"httpx refused the request: {error}", request=request) from error
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
