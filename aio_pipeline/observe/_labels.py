"""The label vocabulary shared by the observability backends (logs, Prometheus, OpenTelemetry):
what a method, an attempt kind, a circuit state, a server route, a caller and an error are
called, always from a bounded set, so that no input can create unbounded label values."""

from __future__ import annotations

import asyncio
from typing import Any, Final

from ..circuit import CircuitState
from ..errors import PipelineError

__all__ = [
    "ATTEMPT_KINDS",
    "CIRCUIT_STATE_VALUES",
    "HTTP_METHODS",
    "MAX_ROUTES",
    "RouteLabels",
    "library_error_name",
    "server_route",
    "service_name",
]

HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
ATTEMPT_KINDS: Final = frozenset({"first", "retry", "hedge"})
#: A circuit's state as a gauge value: 0 closed, 1 half-open, 2 open.
CIRCUIT_STATE_VALUES: Final = {CircuitState.CLOSED: 0, CircuitState.HALF_OPEN: 1, CircuitState.OPEN: 2}
_NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def server_route(request: Any) -> str | None:
    """The matched aiohttp resource's canonical template (read by duck typing, so no aiohttp
    import); ``None`` when no route matched."""
    resource = getattr(getattr(getattr(request, "match_info", None), "route", None), "resource", None)
    canonical = getattr(resource, "canonical", None)
    return canonical if isinstance(canonical, str) else None


def service_name(request: Any, header: str) -> str:
    """The caller's name from ``header``: ``unknown`` when absent, ``invalid`` unless it is at
    most 64 characters of ``[A-Za-z0-9._-]``."""
    name = (request.headers.get(header) or "").strip()
    if not name:
        return "unknown"
    return name if len(name) <= 64 and _NAME_CHARS.issuperset(name) else "invalid"


def library_error_name(error: BaseException, other: str) -> str:
    """The library error class ``error`` is (a subclass counts as its base), ``cancelled`` for a
    cancellation, else ``other``."""
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    return next((c.__name__ for c in type(error).__mro__ if c.__module__ == PipelineError.__module__), other)


#: Distinct routes one client's metrics keep by default (see ``RouteLabels``).
MAX_ROUTES: Final = 200


class RouteLabels:
    """The ``route`` label of one client's requests, from a bounded set.

    A request's route is its URL template (``users/{id}``), a handful per client. But the route
    of an absolute URL is its path, and a URL built with an f-string is its own template, so
    each distinct id would otherwise make a new label set (a new time series, kept forever).
    The first ``limit`` distinct routes a client sends are kept as they are; every later one
    reads ``overflow``. Options: ``limit`` (default ``MAX_ROUTES``, 200), ``overflow`` (the
    backend's word for "other": ``other`` for Prometheus, ``_OTHER`` for OpenTelemetry).
    """

    __slots__ = ("_known", "limit", "overflow")

    def __init__(self, limit: int = MAX_ROUTES, overflow: str = "other") -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"max_routes must be an int >= 1, got {limit!r}")
        self.limit = limit
        self.overflow = overflow
        self._known: set[str] = set()

    def __call__(self, route: str) -> str:
        known = self._known
        if route in known:
            return route
        if len(known) < self.limit:
            known.add(route)
            return route
        return self.overflow
