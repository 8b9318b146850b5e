"""``HttpxTransport``: sends through a user's ``httpx.AsyncClient``.

This module is also where httpx meets our error tree and httpcore's cancellation problem, once:
``map_error`` and ``cancelled_once`` serve both this transport and the drop-in
``HttpxPipelineTransport`` (``aio_pipeline.adapters.httpx_transport``), so the two cannot drift.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import httpx

from .._transport import Transport
from ..errors import (
    ConnectError,
    DeadlineExceededError,
    InvalidRequestError,
    PipelineError,
    TooManyRedirectsError,
    TransportError,
)
from ..http import Headers, Request, Response
from ..propagation import within

if TYPE_CHECKING:
    from ..observe import MetricsProvider

__all__ = ["HttpxTransport"]

T = TypeVar("T")

#: The httpx exceptions ``map_error`` knows: everything sending a request through httpx raises.
HttpxError: TypeAlias = "httpx.TransportError | httpx.DecodingError | httpx.InvalidURL"
HTTPX_ERRORS = (httpx.TransportError, httpx.DecodingError, httpx.InvalidURL)

#: Failures before a connection carried anything: connecting, or waiting for a pool slot
#: (``PoolTimeout``), or a proxy refusing the tunnel (httpcore raises ``ProxyError`` for a
#: CONNECT or SOCKS handshake that failed, before the request is written).
_NOT_CONNECTED = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)
#: The request as given cannot be sent: its URL, or a header h11 refuses.
_NOT_SENDABLE = (httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError)


def map_error(error: HttpxError, request: Request, *, sent_before: bool) -> PipelineError:
    """Our error for one of httpx's, raised while sending ``request``.

    ``sent_before`` says whether this call already put a request on a connection: an earlier
    redirect hop did. Only a call that sent nothing yet can claim that its failure to connect
    means the request never left (``ConnectError``, always safe to retry), or that it was the
    caller's request that could not be sent (``InvalidRequestError``); after a hop was sent the
    server has seen the call (a POST answered ``303`` was processed), and the URL of a later hop
    is the server's, so every failure is a ``TransportError``.
    """
    message = f"{type(error).__name__}: {error}"
    if not sent_before:
        if isinstance(error, _NOT_CONNECTED):
            return ConnectError(f"cannot connect: {message}", request=request)
        if isinstance(error, _NOT_SENDABLE):
            return InvalidRequestError(f"cannot be sent as given: {message}", request=request)
    elif isinstance(error, (*_NOT_CONNECTED, *_NOT_SENDABLE)):
        return TransportError(f"after a redirect: {message}", request=request)
    return TransportError(message, request=request)


async def cancelled_once(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await ``coroutine`` in a task of its own that is cancelled at most once.

    httpcore releases a cancelled request's connection under anyio shields, which a second
    native ``task.cancel()`` breaks through, leaving the connection checked out of the pool for
    good (encode/httpcore#830, #922). A hedge gets exactly that: its own timeout and the
    strategy's TaskGroup both cancel it. However often the caller is cancelled, the inner task
    gets one cancellation and is awaited to the end of its cleanup; then the caller's
    cancellation goes on. ``coroutine`` must own nothing once it returns (read the body, close
    the response): a result that arrives as the caller is cancelled is dropped.
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
    and ``max_redirects`` apply (httpx only has a per-client limit), and a failure is known to
    come before or after the first hop reached the server (``map_error``). The body is read
    inside the attempt, so the deadline bounds it.

    Options:
        async_client: the ``httpx.AsyncClient`` requests are sent through; required.
        metrics_provider: for ``setup()`` to use when given none (see ``Transport``); the
            transport itself records nothing; default ``None``.
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
        except httpx.InvalidURL as error:
            raise map_error(error, request, sent_before=False) from error
        except UnicodeEncodeError as error:  # httpx encodes header names and values as ASCII
            raise InvalidRequestError(f"httpx refused the request: {error}", request=request) from error
        port = outgoing.url.port
        if port is not None and not 0 < port < 65536:  # else anyio fails with an ExceptionGroup
            raise InvalidRequestError(f"invalid URL: port {port} out of range", request=request)
        try:
            async with within.after(timeout, request=request, message="no response"):
                return await cancelled_once(self._send(outgoing, request))
        except DeadlineExceededError:
            raise
        except TimeoutError as error:  # not httpx's (its timeouts are httpx.TimeoutException)
            raise TransportError(f"timed out: {error!r}", request=request) from error

    async def _send(self, outgoing: httpx.Request, request: Request) -> Response:
        redirects = 0
        while True:
            try:
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
                            request=request,
                        )
                finally:
                    await response.aclose()
            except HTTPX_ERRORS as error:
                # Only the first hop's ``send`` can fail having sent nothing (the errors that
                # claim so come from connecting and from the hop's own URL, both before writing).
                raise map_error(error, request, sent_before=redirects > 0) from error
            redirects += 1
            if redirects > request.max_redirects:
                raise TooManyRedirectsError(f"more than {request.max_redirects} redirects", request=request)
            outgoing = next_request
