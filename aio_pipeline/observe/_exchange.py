"""What went on the wire for a server request: the server adapter decides, observers record it.

A server middleware sees what its ``call_next`` returned or raised. The client may get something
else, because the framework decides later (for aiohttp, ``web_protocol._handle_request``):

- an exception escaping the middlewares is answered by the framework: an HTTP exception by its
  own status, ``TimeoutError`` by 504, anything else by 500 (an ``aiohttp.ClientResponseError``
  with ``status=404`` included); our ``DeadlineExceededError`` by the adapter's
  ``expired_status`` (408 by default) and ``OverloadedError`` by 503;
- a response returned unprepared may still choose its status when the framework prepares it:
  ``web.FileResponse`` (and so every static route) answers 200, 206, 304, 404, 412 or 416 then,
  after the handler returned;
- once a response has started (a stream or a WebSocket the handler prepared itself), no second
  response can follow: an exception then makes the framework close the connection mid-response.

So the server adapter (``server/aiohttp.py``, the one module that knows the framework) opens an
``Exchange`` per request, observers (metrics, logs) find it with ``exchange_of(request)`` and
register ``when_sent(callback)``, and the adapter calls ``sent()`` once, when the status is
final: at once for an exception, and when the framework prepares the response the middlewares
returned (a response the handler prepared itself keeps the status it was sent with; a
``FileResponse`` sends its file while it is prepared). Observers time a request until then, from
its arrival: the adapter reads the loop's clock once per request, as ``started`` (seconds on
``clock``, the running loop's clock), so that the observers and the deadline need not read it
again. The callbacks are given:

    status   the status line sent (an ``int``), or ``None`` when none is known;
    aborted  ``True`` when a response had started and the request then failed: the connection
             was closed mid-response. aiohttp's public API does not tell which status a response
             prepared by the handler itself was sent with, so ``status`` is ``None`` then, and
             metrics say ``aborted`` rather than guess a 200 the client may not have got.
             ``None`` without ``aborted``: nothing was sent, the request was cancelled.

Without an adapter (a middleware driven directly, as unit tests do, or under another framework)
``exchange_of`` gives ``None`` and an observer records what it saw: the returned response's
status, or ``status_for(error)``, aiohttp's rule above with the adapter's defaults.

``rejection(error)`` tells a refusal (the handler never ran: ``ServerDeadline`` refused an
expired request, ``LoadShedding`` shed one) from a failure of a handler that ran.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import Final

from ..errors import DeadlineExceededError, OverloadedError, RejectedError

__all__ = ["CURRENT_EXCHANGE", "EXPIRED_STATUS", "Exchange", "exchange_of", "rejection", "status_for"]

#: The status answering an expired request unless the adapter is told otherwise (aio-request's).
EXPIRED_STATUS: Final = 408
_log = logging.getLogger("aio_pipeline.server")


class Exchange:
    """One server request and what was sent for it; see the module docstring.

    ``clock`` is the running loop's clock (a function giving seconds) and ``started`` the time
    the request arrived on it, both given by the adapter; ``clock`` is ``None`` when they were
    not (observers then read the clock themselves). ``callbacks`` are called once, as
    ``callback(status, aborted)``; the adapter may skip watching for the status when there are
    none. While the status is not final, ``callbacks`` is a list: an observer inside the
    adapter's middlewares may append to it directly (``when_sent`` does the same, and also
    serves a caller that comes after).
    """

    __slots__ = ("aborted", "callbacks", "clock", "request", "started", "status")

    def __init__(self, request: object, clock: Callable[[], float] | None = None, started: float = 0.0) -> None:
        self.request = request
        self.clock = clock
        self.started = started
        self.status: int | None = None
        self.aborted = False
        self.callbacks: list[Callable[[int | None, bool], None]] | None = []  # None once sent

    def when_sent(self, callback: Callable[[int | None, bool], None]) -> None:
        """Call ``callback(status, aborted)`` once the status is final (at once if it is)."""
        if self.callbacks is None:
            callback(self.status, self.aborted)
        else:
            self.callbacks.append(callback)

    def sent(self, status: int | None, aborted: bool = False) -> None:
        """For the adapter: the status is final. Only the first call counts."""
        callbacks, self.callbacks = self.callbacks, None
        if callbacks is None:
            return
        self.status, self.aborted = status, aborted
        for callback in callbacks:
            try:
                callback(status, aborted)
            except Exception:  # an observer must not break the response, nor the other observers
                _log.exception("a callback of the server request's exchange failed")


#: The exchange of the request the current task is handling; set by the server adapter.
CURRENT_EXCHANGE: Final[contextvars.ContextVar[Exchange | None]] = contextvars.ContextVar(
    "aio_pipeline_exchange", default=None
)


def exchange_of(request: object) -> Exchange | None:
    """The adapter's exchange for ``request``, ``None`` when no adapter opened one. Found for
    the very object the adapter was given: below a middleware that passes on a clone of the
    request, observers record what they see."""
    exchange = CURRENT_EXCHANGE.get()
    return exchange if exchange is not None and exchange.request is request else None


def status_for(error: BaseException, expired_status: int = EXPIRED_STATUS) -> int | None:
    """The status sent for ``error`` escaping the server middlewares, when no response had
    started: ``expired_status`` for ``DeadlineExceededError``, 503 for ``OverloadedError``, an
    HTTP exception's own status (aiohttp marks them ``__http_exception__``), 504 for any other
    ``TimeoutError``, 500 for any other exception, ``None`` for a cancellation (nothing sent)."""
    if isinstance(error, DeadlineExceededError):
        return expired_status
    if isinstance(error, OverloadedError):
        return 503
    if not isinstance(error, Exception):
        return None
    if getattr(error, "__http_exception__", False):
        status = getattr(error, "status", None)
        if isinstance(status, int):
            return status
    return 504 if isinstance(error, TimeoutError) else 500


def rejection(error: BaseException) -> str | None:
    """``deadline`` or ``overloaded`` when ``error`` refused the request before its handler ran
    (a ``RejectedError``: ``ServerDeadline``'s refusal is both a ``DeadlineExceededError`` and a
    ``RejectedError``, ``LoadShedding`` raises ``OverloadedError``); ``None`` for anything else,
    a handler cancelled at its deadline or an outbound call's error included."""
    if isinstance(error, OverloadedError):
        return "overloaded"
    if isinstance(error, DeadlineExceededError) and isinstance(error, RejectedError):
        return "deadline"
    return None
