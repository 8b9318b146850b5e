"""Outcome classification: is an attempt's result worth keeping, or worth trying again?

Retry and hedging share this *policy*; they differ only in the *mechanics* of acting on it.
A classifier sees either a ``Response`` or the ``Exception`` an attempt raised.
``asyncio.CancelledError`` is a ``BaseException``: strategies never catch it, so it is never
classified and always propagates.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeAlias

from ..errors import ConnectError, DeadlineExceededError, TooManyRedirectsError, TransportError
from ..http import Request, Response

__all__ = [
    "DO_NOT_RETRY_HEADER",
    "DefaultResponseClassifier",
    "Outcome",
    "ResponseClassifier",
    "ResponseVerdict",
    "Result",
    "close_all",
    "is_repeatable",
]

#: A response carrying this header is final: a server (or the breaker) says retrying cannot help.
DO_NOT_RETRY_HEADER = "X-Do-Not-Retry"

#: What one attempt produced: a response, or the exception it raised.
Result: TypeAlias = "Response | Exception"


class ResponseVerdict(enum.Enum):
    """ACCEPT: the outcome is final (return or raise it). REJECT: another attempt may help."""

    ACCEPT = enum.auto()
    REJECT = enum.auto()


class ResponseClassifier(abc.ABC):
    """Decides ACCEPT or REJECT. Subclass it and override ``classify`` (responses); override
    ``classify_error`` too to change how exceptions are judged (network failures and attempt
    timeouts are rejected by default, anything else is final)."""

    __slots__ = ()

    @abc.abstractmethod
    def classify(self, response: Response) -> ResponseVerdict:
        """The verdict for a response."""

    def classify_error(self, error: Exception) -> ResponseVerdict:
        """The verdict for an exception raised by an attempt."""
        # Too many redirects repeats identically however often it is tried.
        if isinstance(error, TooManyRedirectsError):
            return ResponseVerdict.ACCEPT
        if isinstance(error, TransportError | DeadlineExceededError):
            return ResponseVerdict.REJECT
        # Rejections (an open circuit), invalid requests and bugs: another attempt cannot help.
        return ResponseVerdict.ACCEPT

    def classify_result(self, result: Result) -> ResponseVerdict:
        """Dispatch to ``classify`` or ``classify_error``."""
        if isinstance(result, Response):
            return self.classify(result)
        return self.classify_error(result)


# Members as plain names: looking one up on its Enum class costs a call's worth on the hot path.
_ACCEPT, _REJECT = ResponseVerdict.ACCEPT, ResponseVerdict.REJECT


@dataclass(frozen=True, slots=True)
class DefaultResponseClassifier(ResponseClassifier):
    """Rejects 5xx, 408, 429 and ``network_errors_code``; accepts everything else.

    A response carrying ``X-Do-Not-Retry`` is accepted. Exceptions are judged by
    ``ResponseClassifier.classify_error``.

    Options:
        verdict_for_status: a verdict per status, overriding any other rule (checked first, as
            in aio-request; ``None`` is taken as empty); default empty.
        network_errors_code: the synthetic status aio-request uses for a network failure,
            rejected; default 489.
        too_many_redirects_code: the synthetic status aio-request uses for too many redirects,
            taken for its signature; no rule reads it (as a 4xx, it is accepted); default 488.
    """

    verdict_for_status: Mapping[int, ResponseVerdict] = field(default_factory=lambda: MappingProxyType({}))
    network_errors_code: int = 489
    too_many_redirects_code: int = 488

    def __post_init__(self) -> None:
        # aio-request accepts verdict_for_status=None; keep that spelling working.
        overrides = self.verdict_for_status or {}
        for status, verdict in overrides.items():
            if not isinstance(verdict, ResponseVerdict):
                raise ValueError(f"verdict_for_status[{status!r}] must be a ResponseVerdict, got {verdict!r}")
        object.__setattr__(self, "verdict_for_status", MappingProxyType(dict(overrides)))

    def classify(self, response: Response) -> ResponseVerdict:
        status = response.status
        if self.verdict_for_status:
            verdict = self.verdict_for_status.get(status)
            if verdict is not None:
                return verdict
        if DO_NOT_RETRY_HEADER in response.headers:
            return _ACCEPT
        if 500 <= status < 600 or status in (408, 429, self.network_errors_code):
            return _REJECT
        return _ACCEPT


@dataclass(frozen=True, slots=True)
class Outcome:
    """One finished attempt: its request, what it produced, and when (loop clock, seconds)."""

    request: Request
    result: Result
    verdict: ResponseVerdict | None
    started_at: float
    elapsed: float

    @property
    def accepted(self) -> bool:
        return self.verdict is ResponseVerdict.ACCEPT

    def unwrap(self) -> Response:
        """The response, or raise the exception as it was (never wrapped)."""
        if isinstance(self.result, Response):
            return self.result
        raise self.result

    async def discard(self) -> None:
        """Close the response, if it is one; the caller will not return it."""
        if isinstance(self.result, Response):
            await self.result.close()


async def close_all(responses: Iterable[Response]) -> None:
    """Close every one of ``responses`` (none is returned to anyone), even if cancelled meanwhile.

    A strategy closes what it will not return while a cancellation may arrive, or is already
    propagating and arrives again. ``Response.close()`` finishes its own release before letting
    a cancellation through; this goes on to close the rest, then re-raises the cancellation
    (never swallowed). A close that raises does not stop the others either; the first such
    error is raised once all are done, unless a cancellation is.
    """
    cancelled: asyncio.CancelledError | None = None
    failure: Exception | None = None
    for response in responses:
        try:
            await response.close()
        except asyncio.CancelledError as error:
            cancelled = error
        except Exception as error:
            failure = failure or error
    if cancelled is not None:
        raise cancelled
    if failure is not None:
        raise failure


def is_repeatable(request: Request, result: Result) -> bool:
    """Whether sending ``request`` again is safe after ``result``: an idempotent request (or one
    marked retryable), or a failure that proves the request never left this machine."""
    return request.is_idempotent or isinstance(result, ConnectError)
