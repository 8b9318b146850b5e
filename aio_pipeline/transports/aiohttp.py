"""``AioHttpTransport``: sends through a user's ``aiohttp.ClientSession``.

This module is also where aiohttp's exceptions meet our error tree, once: ``map_error`` serves
both this transport and the drop-in ``aiohttp_client_middlewares``
(``aio_pipeline.adapters.aiohttp_client``), so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp
import yarl

from .._transport import Transport
from ..errors import (
    ConnectError,
    InvalidRequestError,
    PipelineError,
    TooManyRedirectsError,
    TransportError,
)
from ..http import Request, Response
from ..propagation import covered, own_bound, time_to_send, within

if TYPE_CHECKING:
    from aiohttp import ClientHandlerType

    from ..observe import MetricsProvider

__all__ = ["AioHttpTransport"]

#: Distinct URLs and endpoints whose parsed URL one transport remembers; past that each is
#: parsed per call, so no input grows the memo for ever.
_URL_CACHE_SIZE = 1024

#: What aiohttp raises when it got no connection to send on: connecting failed (refused, DNS,
#: TLS handshake, proxy), or timed out, waiting for a pool slot included (``ClientTimeout.connect``
#: and ``sock_connect``). aiohttp raises them only from ``connector.connect``, before writing.
NOT_CONNECTED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


def map_error(error: aiohttp.ClientError, request: Request, *, sent_before: bool) -> PipelineError:
    """Our error for one of aiohttp's, raised while sending ``request``.

    ``sent_before`` says whether this call may already have put a request on a connection (an
    earlier redirect hop, or aiohttp's own resend of an idempotent request over a fresh
    connection). Only a call that sent nothing yet can claim that its failure to connect means
    the request never left (``ConnectError``, always safe to retry), or that it was the
    caller's URL that could not be used (``InvalidRequestError``); after a hop was sent the
    server has seen the call (a POST answered ``303`` was processed), and a redirect's URL is
    the server's, so every failure is a ``TransportError``.
    """
    message = f"{type(error).__name__}: {error}"
    if isinstance(error, aiohttp.TooManyRedirects):
        return TooManyRedirectsError(f"more than {request.max_redirects} redirects", request=request)
    if not sent_before:
        if isinstance(error, NOT_CONNECTED):
            return ConnectError(f"cannot connect: {message}", request=request)
        if isinstance(error, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError) and not isinstance(
            error, aiohttp.RedirectClientError
        ):
            return InvalidRequestError(f"invalid URL: {message}", request=request)
    elif isinstance(error, NOT_CONNECTED):
        return TransportError(f"after a redirect or resend: {message}", request=request)
    return TransportError(message, request=request)


class _Sends:
    """The innermost client middleware of one ``session.request``: whether the call may already
    have put a request on a connection.

    aiohttp runs its middlewares around every request it sends for one call (each redirect hop,
    and its one resend of an idempotent request after a dropped keep-alive connection), right
    around connect-and-send. A send that raised one of ``NOT_CONNECTED`` wrote nothing; any
    other outcome, a response or another error, may have.
    """

    __slots__ = ("sent",)

    def __init__(self) -> None:
        self.sent = False

    async def __call__(self, request: aiohttp.ClientRequest, handler: ClientHandlerType, /) -> aiohttp.ClientResponse:
        try:
            response = await handler(request)
        except NOT_CONNECTED:
            raise
        except BaseException:
            self.sent = True
            raise
        self.sent = True
        return response


class AioHttpTransport(Transport):
    """A transport over ``client_session``, which stays the caller's to close.

    Options:
        client_session: the ``aiohttp.ClientSession`` requests are sent through; required.
        buffer_payload: read the whole body inside the attempt, so the deadline bounds it and the
            connection returns to the pool at once; ``False`` returns a response that reads on
            demand and holds its connection until closed; default ``True``.
        metrics_provider: for ``setup()`` to use when given none (see ``Transport``); the
            transport itself records nothing; default ``None``.

    aiohttp follows redirects (and resends an idempotent request once over a fresh connection)
    inside one ``session.request``. For a request that is not idempotent, whether any of those
    sends got past connecting is watched by a middleware added innermost for that call, after the
    session's own (``_Sends``), so a failure is a ``ConnectError`` exactly when nothing of the
    call was sent (``map_error``), and a POST answered ``303`` is never sent again. An idempotent
    request is repeatable whatever was sent, so it is spared that watch: for it a failure to
    connect is a ``ConnectError`` on whichever hop it happened.

    Timeouts: the attempt's ``timeout`` replaces the session's ``total`` (its ``connect``,
    ``sock_connect`` and ``sock_read`` still apply); when an enclosing ``ClientDeadline``
    already cancels the call at that instant (``own_bound``), neither this transport nor aiohttp
    arms a timer for it. With no ``timeout`` at all the session's own timeout applies as is.
    """

    __slots__ = ("_buffer_payload", "_session", "_timeout", "_urls")

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
        own = client_session.timeout
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=own.connect,
            sock_connect=own.sock_connect,
            sock_read=own.sock_read,
            ceil_threshold=own.ceil_threshold,
        )
        # The URL to send to, per URL and endpoint of requests without parameters (nearly all):
        # joining and parsing it costs more than the rest of the transport.
        self._urls: dict[tuple[str, str | None], yarl.URL] = {}

    def send_request(self, request: Request) -> Awaitable[Response]:
        if type(self).send is not AioHttpTransport.send:  # a subclass watching send() sees every call
            return super().send_request(request)
        deadline = request.deadline
        if deadline is None:
            return self._send(request.endpoint, request, self._session.timeout)
        if covered(deadline):
            # The enclosing ClientDeadline cancels this call at its deadline, and has made sure
            # there was time left when the call began: no clock read, no timer here.
            return self._send(request.endpoint, request, self._timeout)
        return self._send_within(request.endpoint, request, time_to_send(deadline, request))

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        if timeout is None:
            return await self._send(endpoint, request, self._session.timeout)
        bound = own_bound(request.deadline, timeout)
        if bound is None:
            return await self._send(endpoint, request, self._timeout)
        return await self._send_within(endpoint, request, bound)

    async def _send_within(self, endpoint: str | None, request: Request, bound: float) -> Response:
        """``_send``, cut at ``bound`` seconds with ``DeadlineExceededError``."""
        async with within.after(bound, request=request, message="no response"):
            return await self._send(endpoint, request, self._timeout)

    async def _send(self, endpoint: str | None, request: Request, timeout: aiohttp.ClientTimeout) -> Response:
        """Send through the session with ``timeout`` as aiohttp's own, mapping its errors."""
        if not request.path_parameters and not request.query_parameters:
            try:
                url = self._urls[request.url, endpoint]
            except KeyError:
                url = self._url(request, endpoint)
                if len(self._urls) < _URL_CACHE_SIZE:
                    self._urls[request.url, endpoint] = url
        else:
            url = self._url(request, endpoint)
        sends = None if request.is_idempotent else _Sends()
        session = self._session
        try:
            response = await session.request(
                request.method,
                url,
                headers=request.headers,
                data=request.body or None,
                allow_redirects=request.allow_redirects,
                # aiohttp counts differently: it fails on reaching its limit, and 0 means "no limit".
                max_redirects=request.max_redirects + 1,
                # Per-request middlewares replace the session's, so the session's own come first,
                # as they would run; aiohttp has no public accessor for them. ``sends`` goes
                # innermost, right around each connect-and-send, redirects and resends included.
                middlewares=session._middlewares if sends is None else (*session._middlewares, sends),
                # With a deadline, it bounds the call (through us, or an enclosing ClientDeadline),
                # not aiohttp's total: one timer, not two.
                timeout=timeout,
            )
            try:
                headers = response.headers  # aiohttp's read-only multidict: ours as it is
                if self._buffer_payload:
                    body = await response.read()
                    return Response(response.status, headers, body, url=response.url, request=request)
            except BaseException:
                response.close()  # a half-read connection must not go back to the pool
                raise
        except aiohttp.ClientError as error:  # before TimeoutError: ConnectionTimeoutError is both
            raise map_error(error, request, sent_before=sends is not None and sends.sent) from error
        except TimeoutError as error:  # aiohttp's own timeouts (the session's ClientTimeout)
            raise TransportError(f"timed out: {error!r}", request=request) from error
        except ValueError as error:
            if isinstance(error, InvalidRequestError):
                raise
            if sends is not None and sends.sent:  # built for a redirect hop: the server's URL
                raise TransportError(f"after a redirect: {error}", request=request) from error
            # aiohttp checks a request while building it, e.g. "Cannot combine AUTHORIZATION
            # header with AUTH argument or credentials encoded in URL": the caller's mistake.
            raise InvalidRequestError(f"aiohttp refused the request: {error}", request=request) from error
        return Response(
            response.status,
            headers,
            url=response.url,
            reader=_reader(response, request),
            on_close=_releaser(response),
            request=request,
        )

    @staticmethod
    def _url(request: Request, endpoint: str | None) -> yarl.URL:
        url_text = request.absolute_url(endpoint)  # raises InvalidRequestError itself
        try:
            return yarl.URL(url_text, encoded=True)
        except ValueError as error:
            raise InvalidRequestError(f"invalid URL: {error}", request=request) from error

    # The session is the caller's: aclose() (inherited) leaves it open.


def _reader(response: aiohttp.ClientResponse, request: Request) -> Callable[[], Awaitable[bytes]]:
    """Read an unbuffered body later, still mapping aiohttp's errors to ours."""

    async def read() -> bytes:
        try:
            return await response.read()
        except aiohttp.ClientError as error:
            response.close()
            raise map_error(error, request, sent_before=True) from error

    return read


def _releaser(response: aiohttp.ClientResponse) -> Callable[[], Awaitable[None]]:
    async def release() -> None:
        response.release()

    return release
