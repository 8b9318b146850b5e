"""The circuit breaker's public vocabulary: states, the state-change event, aio-request's
``CircuitBreaker`` interface and the no-op breaker. ``_breaker`` implements the real one."""

from __future__ import annotations

import abc
import enum
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["CircuitBreaker", "CircuitState", "CircuitStateChanged", "KeyT", "NoopCircuitBreaker", "ResultT"]

KeyT = TypeVar("KeyT", bound=Hashable)
ResultT = TypeVar("ResultT")


class CircuitState(enum.StrEnum):
    """The state of one circuit; the values are what logs and metrics show."""

    OPEN = "open"
    HALF_OPEN = "half_open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class CircuitStateChanged(Generic[KeyT]):
    """The circuit for ``key`` went from ``old`` to ``new`` at ``at`` (loop clock, seconds).

    ``reason`` is one of ``failure_ratio``, ``consecutive_failures``, ``break_elapsed``,
    ``probe_failed``, ``probe_timed_out`` and ``probes_succeeded``.
    """

    key: KeyT
    old: CircuitState
    new: CircuitState
    at: float
    reason: str = ""


class CircuitBreaker(abc.ABC, Generic[KeyT, ResultT]):
    """aio-request's breaker interface: run an operation under the circuit of ``scope``."""

    __slots__ = ()

    @abc.abstractmethod
    async def execute(
        self,
        *,
        scope: KeyT,
        operation: Callable[[], Awaitable[ResultT]],
        fallback: ResultT,
        is_successful: Callable[[ResultT], bool],
    ) -> ResultT:
        """``await operation()`` and report whether ``is_successful(result)``; return
        ``fallback`` without calling it when the circuit of ``scope`` refuses the attempt."""

    @property
    @abc.abstractmethod
    def state(self) -> Mapping[KeyT, CircuitState]:
        """The state of every circuit currently tracked, by key."""


class NoopCircuitBreaker(CircuitBreaker[KeyT, ResultT]):
    """Never refuses, never counts: the explicit opt-out."""

    __slots__ = ()

    async def execute(
        self,
        *,
        scope: KeyT,
        operation: Callable[[], Awaitable[ResultT]],
        fallback: ResultT,
        is_successful: Callable[[ResultT], bool],
    ) -> ResultT:
        return await operation()

    @property
    def state(self) -> Mapping[KeyT, CircuitState]:
        return {}
