"""``Response``: status, headers and a body, owning its connection until closed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDictProxy
from yarl import URL

from ..errors import ContentTypeError

if TYPE_CHECKING:
    from ._request import Request
from ._headers import Headers, HeadersLike

__all__ = ["Response"]

BodyReader = Callable[[], Awaitable[bytes]]
Closer = Callable[[], Awaitable[None]]


#: A JSON media type: ``application/json`` or any ``application/<something>+json`` (RFC 6839).
_JSON_MEDIA_TYPE = re.compile(r"application/(?:[\w.+-]+\+)?json\s*(?:;|$)", re.IGNORECASE)


def _media_type_and_charset(content_type: str) -> tuple[str, str | None]:
    media_type, *params = (part.strip() for part in content_type.split(";"))
    charset = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value:
            charset = value.strip().strip('"')
    return media_type.lower(), charset


class Response:
    """An HTTP response. Use it as ``async with response:`` or call ``close()`` when done.

    A transport gives either the whole ``body`` (the default: the connection is already back in
    the pool) or a ``reader`` that reads it on first ``read()``; ``on_close`` releases whatever
    the response holds and runs once, to its end (see ``close``).

    Read the body before closing: once read it is kept, and ``read()``, ``text()`` and
    ``json()`` return it after ``close()`` too; but a first read after ``close()`` raises
    ``RuntimeError``, whether or not the transport had buffered the body, so that code tested
    against a buffering transport does not break against a streaming one.
    """

    __slots__ = (
        "_body",
        "_closed",
        "_closing",
        "_on_close",
        "_read",
        "_reader",
        "_url",
        "elapsed",
        "headers",
        "request",
        "status",
    )

    def __init__(
        self,
        status: int,
        headers: HeadersLike = None,
        body: bytes = b"",
        *,
        url: str | URL = "",
        reader: BodyReader | None = None,
        on_close: Closer | None = None,
        request: Request | None = None,
        elapsed: float = -1.0,
    ) -> None:
        self.status = status
        # A read-only multidict (a transport's library built it) is kept as it is.
        self.headers: CIMultiDictProxy[str] = headers if isinstance(headers, CIMultiDictProxy) else Headers(headers)
        self._url = url  # a library's URL object is turned into text only if asked for
        #: The attempt's request this response answers (its ``attempt``, ``deadline`` and
        #: ``priority`` as sent), when a transport made it; ``None`` for one made otherwise.
        self.request = request
        #: Seconds the attempt took, from sending to the response (its body too when buffered),
        #: as whoever measured it says; ``-1.0`` when nothing measured it (aio-request's value for
        #: that). The strategies that time their attempts anyway (sequential, hedging, and a single
        #: attempt someone listens to) fill it in; a lone attempt nobody watches is not timed, so
        #: that a plain call reads no clock for it.
        self.elapsed = elapsed
        self._body: bytes | None = None if reader is not None else body
        self._reader = reader
        self._on_close = on_close
        self._closed = False
        self._read = False  # whether read() has returned the body: from then on it is the caller's
        self._closing: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url}>"

    @property
    def url(self) -> str:
        """The URL that answered (after redirects), as text; ``""`` when unknown."""
        url = self._url
        if type(url) is not str:
            url = self._url = str(url)
        return url

    def is_informational(self) -> bool:
        """1xx."""
        return 100 <= self.status < 200

    def is_successful(self) -> bool:
        """2xx."""
        return 200 <= self.status < 300

    def is_redirect(self) -> bool:
        """3xx."""
        return 300 <= self.status < 400

    def is_redirection(self) -> bool:
        """3xx (aio-request's name for ``is_redirect``)."""
        return 300 <= self.status < 400

    def is_client_error(self) -> bool:
        """4xx."""
        return 400 <= self.status < 500

    def is_server_error(self) -> bool:
        """5xx."""
        return 500 <= self.status < 600

    @property
    def content_type(self) -> str | None:
        """The Content-Type header as sent, ``None`` when there is none."""
        return self.headers.get("Content-Type")

    @property
    def is_json(self) -> bool:
        """Whether the Content-Type is JSON: ``application/json`` or ``application/*+json``."""
        content_type = self.headers.get("Content-Type")
        return content_type is not None and _JSON_MEDIA_TYPE.match(content_type.strip()) is not None

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called."""
        return self._closed

    async def read(self) -> bytes:
        """The whole body (read once, then kept).

        Raises ``RuntimeError`` when the response was closed before its body was first read.
        """
        if not self._read:
            if self._closed:
                raise RuntimeError(f"{self!r} was closed before its body was read: read it inside `async with`")
            if self._body is None:
                assert self._reader is not None
                try:
                    self._body = await self._reader()
                except Exception as error:
                    if self._closed:  # closed while reading: the reader's error is only a symptom
                        raise RuntimeError(f"{self!r} was closed while its body was being read") from error
                    raise
            self._read = True
        assert self._body is not None
        return self._body

    async def text(self, encoding: str | None = None) -> str:
        """The body decoded with ``encoding``, else the Content-Type charset, else UTF-8; also
        UTF-8 when the one named cannot decode text (unknown, not a text codec, malformed)."""
        charset = _media_type_and_charset(self.headers.get("Content-Type", ""))[1]
        body = await self.read()
        try:
            return body.decode(encoding or charset or "utf-8", errors="replace")
        except (LookupError, UnicodeError, ValueError):  # the charset is the server's: anything goes
            return body.decode("utf-8", errors="replace")

    async def json(
        self,
        *,
        encoding: str | None = None,
        loads: Callable[[str], Any] = json.loads,
        content_type: str | None = "application/json",
    ) -> Any:
        """The body parsed as JSON (decoded as ``text(encoding)`` does); ``None`` for an empty body,
        whatever its Content-Type (aio-request checks the type of an empty body too).

        Raises ``ContentTypeError`` (also ``UnexpectedContentTypeError``) unless the Content-Type
        is ``content_type``, or any JSON media type for the default ``application/json``
        (``application/*+json`` too); ``content_type=None`` skips the check.
        """
        body = await self.read()
        if not body.strip():
            return None
        if content_type is not None:
            media_type = _media_type_and_charset(self.headers.get("Content-Type", ""))[0]
            expected = content_type.lower()
            if media_type != expected and not (expected == "application/json" and self.is_json):
                raise ContentTypeError(
                    f"expected Content-Type {content_type!r}, got {media_type or 'none'!r} "
                    f"(status {self.status}, {self.url}); pass content_type=None to parse anyway"
                )
        return loads(await self.text(encoding))

    async def close(self) -> None:
        """Release the response's connection; safe to call more than once, and from several tasks.

        The release (``on_close``) runs to its end even when the caller is cancelled meanwhile,
        and the cancellation goes on after it: a release cut short would hold the connection
        for good, since nothing closes a response twice. Every caller waits for that one
        release; the first gets its exception, if any.
        """
        self._closed = True
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            self._closing = asyncio.ensure_future(on_close())  # a task: it runs on if we are cancelled
            await _to_the_end(self._closing)
        elif self._closing is not None and not self._closing.done():
            with contextlib.suppress(Exception):  # the first caller's to report
                await _to_the_end(self._closing)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def _to_the_end(task: asyncio.Future[None]) -> None:
    """Await ``task`` until it is done, even if the caller is cancelled meanwhile; then re-raise
    the caller's cancellation, else the task's outcome."""
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the caller's cancellation is what propagates
        raise
