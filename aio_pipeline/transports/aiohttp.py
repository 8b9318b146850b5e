"""``AioHttpTransport``: sends through a user's ``aiohttp.ClientSession``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp
import yarl

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

__all__ = ["AioHttpTransport"]


class AioHttpTransport(Transport):
    """A transport over ``client_session``, which stays the caller's to close.

    ``buffer_payload=True`` (the default) reads the whole body inside the attempt, so the
    deadline bounds it and the connection returns to the pool at once; ``False`` returns a
    response that reads on demand and holds its connection until closed. ``metrics_provider``
    is for ``setup()`` to use (see ``Transport``).
    """

    __slots__ = ("_buffer_payload", "_session")

    def __init__(
        self,
        client_session: aiohttp.ClientSession,
        *,
        buffer_payload: bool = True,
        metrics_provider: MetricsProvider | None = None,
    ) -> None:
        self.metrics_provider = metrics_provider
        self._session = client_session
        self._buffer_payload = buffer_payload

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        url_text = request.absolute_url(endpoint)  # raises InvalidRequestError itself
        try:
            url = yarl.URL(url_text, encoded=True)
        except ValueError as error:
            raise InvalidRequestError(f"invalid URL: {error}", request=request) from error
        try:
            async with within.after(timeout, request=request, message="no response"):
                return await self._send(url, request)
        except DeadlineExceededError:
            raise
        except TimeoutError as error:  # aiohttp's own timeouts (the session's ClientTimeout)
            raise TransportError(f"timed out: {error!r}", request=request) from error
        except aiohttp.TooManyRedirects as error:
            raise TooManyRedirectsError(f"more than {request.max_redirects} redirects", request=request) from error
        except (aiohttp.ClientConnectorError, aiohttp.ClientProxyConnectionError) as error:
            raise ConnectError(f"cannot connect: {error}", request=request) from error
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as error:
            raise InvalidRequestError(f"invalid URL: {error}", request=request) from error
        except aiohttp.ClientError as error:
            raise TransportError(f"{type(error).__name__}: {error}", request=request) from error
        except ValueError as error:
            # aiohttp checks a request while building it, e.g. "Cannot combine AUTHORIZATION
            # header with AUTH argument or credentials encoded in URL": the caller's mistake.
            if isinstance(error, InvalidRequestError):
                raise
            raise InvalidRequestError(f"aiohttp refused the request: {error}", request=request) from error

    async def _send(self, url: yarl.URL, request: Request) -> Response:
        response = await self._session.request(
            request.method,
            url,
            headers=request.headers.multi_items(),
            data=request.body or None,
            allow_redirects=request.allow_redirects,
            # aiohttp counts differently: it fails on reaching its limit, and 0 means "no limit".
            max_redirects=request.max_redirects + 1,
        )
        try:
            headers = Headers.from_pairs(response.headers.items())
            if self._buffer_payload:
                return Response(response.status, headers, await response.read(), url=str(response.url))
        except BaseException:
            response.close()  # a half-read connection must not go back to the pool
            raise
        return Response(
            response.status,
            headers,
            url=str(response.url),
            reader=_reader(response, request),
            on_close=_releaser(response),
        )

    # The session is the caller's: aclose() (inherited) leaves it open.


def _reader(response: aiohttp.ClientResponse, request: Request) -> Callable[[], Awaitable[bytes]]:
    """Read an unbuffered body later, still mapping aiohttp's errors to ours."""

    async def read() -> bytes:
        try:
            return await response.read()
        except aiohttp.ClientError as error:
            response.close()
            raise TransportError(f"{type(error).__name__}: {error}", request=request) from error

    return read


def _releaser(response: aiohttp.ClientResponse) -> Callable[[], Awaitable[None]]:
    async def release() -> None:
        response.release()

    return release
