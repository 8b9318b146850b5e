"""What the pipeline asks of a metrics backend, so that the core never imports one.

A backend (``PrometheusMetricsProvider`` and ``OpenTelemetryMetricsProvider``, in
``aio_pipeline.middlewares``) implements ``MetricsProvider``; ``setup()`` and
``aiohttp_middleware_factory()`` place the pieces it hands out at the right depth of their stacks:

    client: [call middleware] deadline priority strategy [attempt middleware] breaker wire transport
            strategy events -> client_event_hook        breaker changes -> circuit_breaker_hook
    server: [server middleware] deadline priority ... handler

Each method is called once per client (or server app) and may return a fresh object; metric
objects themselves are shared per registry by the backend, never module globals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from ..chain import Middleware
from ..circuit import CircuitStateChanged
from ..http import Request, Response
from ..policy import EventHook

__all__ = ["MetricsProvider"]


@runtime_checkable
class MetricsProvider(Protocol):
    """A metrics backend, as the facade and the server adapter use it."""

    def client_call_middleware(self) -> Middleware[Request, Response]:
        """Once per call, outside the deadline: call duration, status (or error kind)."""
        ...

    def client_attempt_middleware(self) -> Middleware[Request, Response]:
        """Once per physical attempt, inside the strategy: attempt duration by ``attempt_kind``."""
        ...

    def client_event_hook(self) -> EventHook:
        """Receives the strategies' events (budget exhausted, retries, hedges)."""
        ...

    def circuit_breaker_hook(self) -> Callable[[CircuitStateChanged[Any]], None]:
        """Receives the circuit breaker's state changes."""
        ...

    def server_middleware(self) -> Middleware[Any, Any]:
        """Outermost on the server but for logging: duration, in flight, rejections. On the server
        framework's own request and response types (aiohttp's: ``aio_pipeline.server.aiohttp``'s
        ``ServerMiddleware``), hence ``Any`` here."""
        ...
