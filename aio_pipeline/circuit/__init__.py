"""Circuit breaking's state: ``DefaultCircuitBreaker`` (a circuit per key, sampled over a
``SlidingWindow``, half-open probes) and its vocabulary (``CircuitState``,
``CircuitStateChanged``, aio-request's ``CircuitBreaker`` interface, ``NoopCircuitBreaker``).
The middleware that puts attempts under it is ``aio_pipeline.middlewares.CircuitBreakerMiddleware``."""

from ._breaker import CircuitPermit, DefaultCircuitBreaker
from ._states import CircuitBreaker, CircuitState, CircuitStateChanged, NoopCircuitBreaker
from ._window import SlidingWindow

__all__ = [
    "CircuitBreaker",
    "CircuitPermit",
    "CircuitState",
    "CircuitStateChanged",
    "DefaultCircuitBreaker",
    "NoopCircuitBreaker",
    "SlidingWindow",
]
