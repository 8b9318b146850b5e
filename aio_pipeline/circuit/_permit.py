"""One circuit's mutable state, and the permit an attempt holds while it runs under it. The
breaker (``_circuit.DefaultCircuitBreaker``) owns both and makes every decision."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Generic

from ._circuit_api import CircuitState, KeyT
from ._circuit_window import SlidingWindow

if TYPE_CHECKING:
    from ._circuit import DefaultCircuitBreaker

__all__ = ["Circuit", "CircuitPermit", "Outcome"]


class Outcome(enum.Enum):
    SUCCESS = enum.auto()
    FAILURE = enum.auto()
    CANCELLED = enum.auto()
    UNUSED = enum.auto()  # the attempt never reached the endpoint: the permit goes back


# Members as plain names: looking one up on its Enum class costs a call's worth on the hot path.
_SUCCESS, _FAILURE = Outcome.SUCCESS, Outcome.FAILURE


class CircuitPermit(Generic[KeyT]):
    """Leave for one attempt under the circuit of ``key``, from ``DefaultCircuitBreaker.acquire``.

    Report how the attempt ended with ``success()``, ``failure()``, ``cancelled()`` or
    ``unused()``; only the first report counts, so ``cancelled()`` in a ``finally`` is a safe
    catch-all. A cancelled probe (``is_probe``) counts as a failure, since a timeout is the usual
    reason a probe is cancelled; any other cancelled attempt (a hedging loser) counts as nothing.
    ``unused()`` is for an attempt that never reached the endpoint for a reason of the caller's
    own (an invalid request): it says nothing of the endpoint, so it counts as nothing, and a
    probe's slot is handed back: the circuit stays half-open and the next attempt may probe.
    """

    __slots__ = ("_breaker", "_circuit", "_epoch", "_reported", "key", "probe_id")

    def __init__(
        self, breaker: DefaultCircuitBreaker[KeyT, Any], key: KeyT, circuit: Circuit, probe_id: int | None
    ) -> None:
        self._breaker = breaker
        self._circuit = circuit
        self._epoch = circuit.epoch
        self._reported = False
        self.key = key
        self.probe_id = probe_id

    @property
    def is_probe(self) -> bool:
        """Whether this attempt probes a half-open circuit."""
        return self.probe_id is not None

    def success(self) -> None:
        if not self._reported:
            self._reported = True
            circuit = self._circuit
            if self.probe_id is None and circuit.epoch == self._epoch:
                # The usual report, written out: the circuit has stayed closed since admitting
                # the attempt (every transition changes the epoch), so time moved nothing.
                breaker = self._breaker
                if breaker._circuits.get(self.key) is circuit:  # not forgotten meanwhile
                    circuit.window.record(breaker._now(), failed=False)
                    circuit.consecutive = 0
                return
            self._breaker._report(self, circuit, self._epoch, _SUCCESS)

    def failure(self) -> None:
        if not self._reported:
            self._reported = True
            self._breaker._report(self, self._circuit, self._epoch, _FAILURE)

    def cancelled(self) -> None:
        if not self._reported:
            self._reported = True
            self._breaker._report(self, self._circuit, self._epoch, Outcome.CANCELLED)

    def unused(self) -> None:
        if not self._reported:
            self._reported = True
            self._breaker._report(self, self._circuit, self._epoch, Outcome.UNUSED)


class Circuit:
    """The mutable state behind one key. ``epoch`` changes with every transition, so a report
    from a permit of an earlier period (one that outlived its probe lease, or was issued before
    the circuit opened) is recognised and ignored."""

    __slots__ = ("consecutive", "epoch", "next_probe_id", "open_until", "probe_successes", "probes", "state", "window")

    def __init__(self, window: SlidingWindow) -> None:
        self.state = CircuitState.CLOSED
        self.epoch = 0
        self.window = window
        self.consecutive = 0  # failures in a row, while closed
        self.open_until = 0.0
        self.probes: dict[int, float] = {}  # probe id -> when its lease runs out
        self.probe_successes = 0
        self.next_probe_id = 0
