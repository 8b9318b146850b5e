"""Circuit breaking per endpoint: fail fast while an endpoint is unhealthy, probe it back.

    deadline -> priority -> strategy -> CircuitBreakerMiddleware(breaker) -> wire -> transport

It sits inside the strategy, so every physical attempt (first try, retry or hedge) is one
sample, and an open circuit refuses each attempt with ``CircuitOpenError`` without touching the
network. The state lives in the breaker (``DefaultCircuitBreaker``), an object the user owns
and may share between pipelines; this middleware only maps attempts onto it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from aio_pipeline.chain import Handler
from aio_pipeline.circuit import CircuitBreaker, DefaultCircuitBreaker
from aio_pipeline.errors import CircuitOpenError, InvalidRequestError
from aio_pipeline.http import Request, Response
from aio_pipeline.policy import DefaultResponseClassifier, ResponseClassifier, ResponseVerdict, check_kind
from aio_pipeline.propagation import LOW_TIMEOUT_THRESHOLD

__all__ = ["CircuitBreakerMiddleware", "endpoint_authority"]

# A member as a plain name: looking one up on its Enum class costs a call's worth per attempt.
_REJECT = ResponseVerdict.REJECT

#: Distinct URL templates and endpoints whose circuit key one middleware remembers; past that the
#: key is worked out per attempt, so no input grows the memo for ever.
_KEY_CACHE_SIZE = 1024


def endpoint_authority(request: Request) -> str:
    """``scheme://host:port`` of where ``request`` goes (``Request.authority``): the default key.

    Userinfo, path and query are left out (one circuit per server, and no credentials in keys,
    logs or metric labels); the host is lowercased and the default port made explicit, so
    ``http://Example.com/`` and ``http://example.com:80/x`` share a circuit.
    """
    return request.authority


@dataclass(frozen=True, slots=True)
class CircuitBreakerMiddleware:
    """Runs each attempt under the circuit of ``key(request)`` in ``breaker``.

    Options:
        breaker: the shared state, usually a ``DefaultCircuitBreaker``. Any other
            ``CircuitBreaker`` is driven through its ``execute``; refusals then carry
            ``retry_after=0``, since that interface does not say how long the break lasts;
            required.
        key: the circuit an attempt belongs to, ``request -> key``; default
            ``endpoint_authority`` (scheme, host, port).
        classifier: the responses that count as failures: those it rejects; default
            ``DefaultResponseClassifier()`` (5xx, 408, 429, unless ``X-Do-Not-Retry``).

    Any exception from the attempt counts as a failure too, except ``InvalidRequestError``: the
    request never left, so it counts as nothing and a half-open probe's slot goes back unused
    (the circuit stays half-open). A cancelled attempt (a losing hedge, or a caller giving up)
    counts as nothing, except a half-open probe, which counts as failed.
    While the circuit is open, attempts fail at once with ``CircuitOpenError`` carrying the
    request and ``retry_after``, the seconds until the next probe may go.
    """

    breaker: CircuitBreaker[Any, Any]
    _: KW_ONLY
    key: Callable[[Request], Hashable] = endpoint_authority
    classifier: ResponseClassifier = field(default_factory=DefaultResponseClassifier)

    _keys: dict[tuple[str, str | None], str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.breaker, CircuitBreaker):
            raise ValueError(f"breaker must be a CircuitBreaker instance, got {self.breaker!r}")
        if not callable(self.key):
            raise ValueError(f"key must be callable (request -> key), got {self.key!r}")
        check_kind("classifier", self.classifier, ResponseClassifier)
        if self.key is endpoint_authority:  # a pure function of URL and endpoint: remembered
            object.__setattr__(self, "_keys", {})

    def _failed(self, response: Response) -> bool:
        return self.classifier.classify(response) is ResponseVerdict.REJECT

    def _key(self, request: Request) -> Hashable:
        keys = self._keys
        if keys is None:
            return self.key(request)
        try:
            return keys[request.url, request.endpoint]
        except KeyError:
            key = request.authority
            if len(keys) < _KEY_CACHE_SIZE:
                keys[request.url, request.endpoint] = key
            return key

    def link(self, call_next: Handler[Request, Response]) -> Handler[Request, Response]:
        """The handler with ``call_next`` bound (see ``compose``)."""

        async def under_the_circuit(request: Request) -> Response:
            if type(self.breaker) is not DefaultCircuitBreaker and not isinstance(self.breaker, DefaultCircuitBreaker):
                return await self._execute(request, call_next)
            permit = self.breaker.acquire(self._key(request), request=request)
            try:
                response = await call_next(request)
            except InvalidRequestError:
                # The caller's mistake (a bad URL or header): the request never left, so it says
                # nothing of the endpoint; a probe's slot goes back for the next attempt.
                permit.unused()
                raise
            except Exception:
                permit.failure()
                raise
            except BaseException:
                # Cancelled. Cut off by its own deadline, the attempt timed out: a failure, and the only
                # one an endpoint that accepts and never answers ever produces. Otherwise (a losing
                # hedge, a caller giving up early) it says nothing about the endpoint.
                deadline = request.deadline
                if deadline is not None and deadline.timeout < LOW_TIMEOUT_THRESHOLD:
                    permit.failure()
                else:
                    permit.cancelled()
                raise
            try:
                failed = self.classifier.classify(response) is _REJECT
            except BaseException:  # a broken classifier must not leak the connection
                permit.failure()
                await response.close()
                raise
            if failed:
                permit.failure()
            else:
                permit.success()
            return response

        return under_the_circuit

    def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Awaitable[Response]:
        return self.link(call_next)(request)

    async def _execute(self, request: Request, call_next: Handler[Request, Response]) -> Response:
        refused = Response(502)  # a marker: identity tells a refusal from a real 502
        response: Response = await self.breaker.execute(
            scope=self.key(request),
            operation=lambda: call_next(request),
            fallback=refused,
            is_successful=lambda response: not self._failed(response),
        )
        if response is refused:
            raise CircuitOpenError("circuit is open", request=request, retry_after=0.0)
        return response
