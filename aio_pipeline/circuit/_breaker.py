"""Circuit breaking: stop calling an endpoint that keeps failing, and notice when it is back.

Each key (an endpoint, by default) has its own circuit::

                  failure ratio over the window, or N consecutive failures
        CLOSED ─────────────────────────────────────────────────────────▶ OPEN
          ▲                                                            │    ▲
          │ every probe succeeded                   break_duration over│    │ a probe failed, was
          │                                                            ▼    │ cancelled or outlived
          └──────────────────────────────────────────────────────── HALF_OPEN  probe_timeout

CLOSED lets every attempt through and samples its outcome; OPEN refuses every attempt with
``CircuitOpenError``; HALF_OPEN lets ``half_open_probes`` attempts through as probes and
refuses the rest. A probe that never reached the endpoint (an invalid request) goes back
unused: the circuit stays half-open and its slot is free for the next attempt. Time comes
from the event loop's monotonic clock, never the wall clock, and time-driven changes (the
break ending, a probe timing out) are applied when the circuit is next looked at, dated when
they were due.

Two ways in: ``execute(...)``, aio-request's interface, and ``acquire(key)``, which returns a
``CircuitPermit`` for one attempt whose owner reports exactly how it ended (the middleware
uses it, so that exceptions and cancellations are judged, not only responses).
"""

from __future__ import annotations

import enum
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic

from ..errors import CircuitOpenError, InvalidRequestError
from ..policy import is_count, is_seconds, require
from ..propagation import loop_time
from ._states import CircuitBreaker, CircuitState, CircuitStateChanged, KeyT, NoopCircuitBreaker, ResultT
from ._window import SlidingWindow

__all__ = [
    "CircuitBreaker",
    "CircuitPermit",
    "CircuitState",
    "CircuitStateChanged",
    "DefaultCircuitBreaker",
    "NoopCircuitBreaker",
]

_log = logging.getLogger("aio_pipeline.circuit")


class _Report(enum.Enum):
    """How an attempt under a permit ended, as its permit reports it."""

    SUCCESS = enum.auto()
    FAILURE = enum.auto()
    CANCELLED = enum.auto()
    UNUSED = enum.auto()  # the attempt never reached the endpoint: the permit goes back


# Members as plain names: looking one up on its Enum class costs a call's worth on this hot path.
_CLOSED, _HALF_OPEN, _OPEN = CircuitState.CLOSED, CircuitState.HALF_OPEN, CircuitState.OPEN
_SUCCESS, _FAILURE, _CANCELLED, _UNUSED = _Report.SUCCESS, _Report.FAILURE, _Report.CANCELLED, _Report.UNUSED


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
            self._breaker._report(self, self._circuit, self._epoch, _Report.CANCELLED)

    def unused(self) -> None:
        if not self._reported:
            self._reported = True
            self._breaker._report(self, self._circuit, self._epoch, _Report.UNUSED)


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


@dataclass(frozen=True, kw_only=True, eq=False)
class DefaultCircuitBreaker(CircuitBreaker[KeyT, ResultT]):
    """A circuit per key, sampled over a sliding window; share one instance to share its state.

    The circuit opens when, within the last ``sampling_duration`` seconds, at least
    ``minimum_throughput`` attempts ended and ``failures / attempts >= failure_threshold``; or,
    with ``consecutive_failures`` set, after that many failures in a row, however slow the
    traffic. It stays open ``break_duration`` seconds, then lets ``half_open_probes`` attempts
    through: when all of them succeed it closes with an empty window, and when one fails it opens
    again. A probe that has not reported within ``probe_timeout`` counts as failed, so a hung
    probe cannot hold the circuit half-open. Bad values raise ``ValueError`` naming the option.
    Use an instance from one event loop: it is not thread-safe.

    Options:
        break_duration: how long the circuit stays open, seconds, > 0; required.
        failure_threshold: the failure ratio that opens it, a fraction in (0, 1]; required.
        minimum_throughput: attempts that must have ended in the window before the ratio
            counts, a count > 0; required.
        sampling_duration: the sliding window, seconds, > 0; required.
        windows_count: the buckets the window slides in, a count > 0; default 10.
        half_open_probes: attempts let through when half-open, a count > 0; default 1.
        consecutive_failures: failures in a row that open the circuit, a count > 0; default
            ``None``: only the ratio opens it.
        probe_timeout: seconds, > 0, after which a probe that has not reported counts as failed;
            default ``None``: ``break_duration``.
        max_keys: circuits kept, those of the most recently used keys, a count > 0; older ones
            are forgotten (and start closed if they come back); default 1000.
        hooks: called with a ``CircuitStateChanged`` on every transition, synchronously: keep
            them quick; an exception from one is logged and otherwise ignored; default none.
        clock: ``() -> seconds``, monotonic; default ``None``: the running event loop's
            ``time()``.
    """

    break_duration: float
    failure_threshold: float
    minimum_throughput: int
    sampling_duration: float
    windows_count: int = 10
    half_open_probes: int = 1
    consecutive_failures: int | None = None
    probe_timeout: float | None = None
    max_keys: int = 1000
    hooks: Sequence[Callable[[CircuitStateChanged[KeyT]], None]] = ()
    clock: Callable[[], float] | None = None
    _circuits: OrderedDict[KeyT, Circuit] = field(init=False, repr=False, default_factory=OrderedDict)
    _now: Callable[[], float] = field(init=False, repr=False, default=loop_time)
    _lease: float = field(init=False, repr=False, default=0.0)
    _subscribers: list[Callable[[CircuitStateChanged[KeyT]], None]] = field(
        init=False, repr=False, default_factory=list
    )

    def __post_init__(self) -> None:
        require("break_duration", is_seconds(self.break_duration), "a number of seconds > 0", self.break_duration)
        threshold = self.failure_threshold
        ok = isinstance(threshold, int | float) and not isinstance(threshold, bool) and 0 < threshold <= 1
        require("failure_threshold", ok, "a ratio in (0, 1]", threshold)
        require("minimum_throughput", is_count(self.minimum_throughput), "an int > 0", self.minimum_throughput)
        require("sampling_duration", is_seconds(self.sampling_duration), "seconds > 0", self.sampling_duration)
        require("windows_count", is_count(self.windows_count), "an int > 0", self.windows_count)
        require("half_open_probes", is_count(self.half_open_probes), "an int > 0", self.half_open_probes)
        count = self.consecutive_failures
        require("consecutive_failures", count is None or is_count(count), "None or an int > 0", count)
        lease = self.probe_timeout
        require("probe_timeout", lease is None or is_seconds(lease), "None or seconds > 0", lease)
        require("max_keys", is_count(self.max_keys), "an int > 0", self.max_keys)
        object.__setattr__(self, "hooks", tuple(self.hooks))
        object.__setattr__(self, "_now", self.clock or loop_time)
        object.__setattr__(self, "_lease", self.break_duration if lease is None else lease)

    def subscribe(self, hook: Callable[[CircuitStateChanged[KeyT]], None]) -> None:
        """Also call ``hook`` on every transition, after ``hooks``, as they are called.

        For instrumentation attached to a breaker someone else constructed (metrics, logs).
        A hook equal to one already subscribed is not added twice, so two clients sharing a
        breaker and a metrics backend count each transition once.
        """
        if hook not in self._subscribers:
            self._subscribers.append(hook)

    @property
    def state(self) -> Mapping[KeyT, CircuitState]:
        """A snapshot of every tracked circuit's state, brought up to date with the clock."""
        now = self._now()
        for key, circuit in list(self._circuits.items()):
            self._advance(key, circuit, now)
        return {key: circuit.state for key, circuit in self._circuits.items()}

    def acquire(self, key: KeyT, *, request: object = None) -> CircuitPermit[KeyT]:
        """Admit one attempt under the circuit of ``key``, or raise ``CircuitOpenError``
        (carrying ``request``) whose ``retry_after`` is the seconds until a probe may go:
        the rest of the break, or while every probe slot is taken, the time until the oldest
        probe's lease runs out (the latest the half-open state can last)."""
        circuit = self._circuit_for(key)
        if circuit.state is _CLOSED:  # nothing changes a closed circuit with time alone
            return CircuitPermit(self, key, circuit, None)
        now = self._now()
        self._advance(key, circuit, now)
        if circuit.state is _CLOSED:  # _advance may have closed it
            return CircuitPermit(self, key, circuit, None)
        if circuit.state is _HALF_OPEN:
            if len(circuit.probes) + circuit.probe_successes < self.half_open_probes:
                probe_id = circuit.next_probe_id
                circuit.next_probe_id += 1
                circuit.probes[probe_id] = now + self._lease
                return CircuitPermit(self, key, circuit, probe_id)
            retry_after = min(min(circuit.probes.values()) - now, self._lease)
        else:
            # Clamped: float rounding must not make a break look longer than it is.
            retry_after = min(circuit.open_until - now, self.break_duration)
        raise CircuitOpenError(
            f"circuit {key!r} is {circuit.state}: next probe in {retry_after:.3f} s",
            request=request,
            retry_after=retry_after,
        )

    async def execute(
        self,
        *,
        scope: KeyT,
        operation: Callable[[], Awaitable[ResultT]],
        fallback: ResultT,
        is_successful: Callable[[ResultT], bool],
    ) -> ResultT:
        """As aio-request's, except that an exception from ``operation`` counts as a failure
        (and propagates), an ``InvalidRequestError`` (the request never left) as nothing, the
        permit going back unused, and a cancelled ``operation`` is judged as ``CircuitPermit``
        says."""
        try:
            permit = self.acquire(scope)
        except CircuitOpenError:
            return fallback
        try:
            result = await operation()
            if is_successful(result):
                permit.success()
            else:
                permit.failure()
            return result
        except InvalidRequestError:
            permit.unused()
            raise
        except Exception:
            permit.failure()
            raise
        finally:
            permit.cancelled()  # a no-op once reported: only a cancellation arrives here unreported

    def _circuit_for(self, key: KeyT) -> Circuit:
        try:
            circuit = self._circuits[key]
        except KeyError:
            pass
        else:
            self._circuits.move_to_end(key)
            return circuit
        circuit = self._circuits[key] = Circuit(SlidingWindow(self.sampling_duration, self.windows_count))
        if len(self._circuits) > self.max_keys:
            self._circuits.popitem(last=False)
        return circuit

    def _report(self, permit: CircuitPermit[KeyT], circuit: Circuit, epoch: int, outcome: _Report) -> None:
        key = permit.key
        if self._circuits.get(key) is not circuit:
            return  # the key was forgotten (least recently used) while the attempt ran
        now = self._now()
        if circuit.state is not _CLOSED:
            self._advance(key, circuit, now)
        if circuit.epoch != epoch:
            return  # the circuit has moved on: this attempt says nothing about its new period
        if permit.probe_id is not None:
            del circuit.probes[permit.probe_id]  # also frees the slot of an unused probe
            if outcome is _UNUSED:
                return
            if outcome is not _SUCCESS:
                self._transition(key, circuit, _OPEN, now, "probe_failed")
            else:
                circuit.probe_successes += 1
                if circuit.probe_successes >= self.half_open_probes:
                    self._transition(key, circuit, _CLOSED, now, "probes_succeeded")
        elif outcome is _SUCCESS:
            circuit.window.record(now, failed=False)
            circuit.consecutive = 0
        elif outcome is _FAILURE:
            circuit.window.record(now, failed=True)
            circuit.consecutive += 1
            reason = self._trip_reason(circuit, now)
            if reason:
                self._transition(key, circuit, _OPEN, now, reason)

    def _trip_reason(self, circuit: Circuit, now: float) -> str:
        if self.consecutive_failures is not None and circuit.consecutive >= self.consecutive_failures:
            return "consecutive_failures"
        successes, failures = circuit.window.counts(now)
        total = successes + failures
        if total >= self.minimum_throughput and failures / total >= self.failure_threshold:
            return "failure_ratio"
        return ""

    def _advance(self, key: KeyT, circuit: Circuit, now: float) -> None:
        """Apply the changes that time alone makes, each dated when it was due."""
        while True:
            if circuit.state is _OPEN and now >= circuit.open_until:
                self._transition(key, circuit, _HALF_OPEN, circuit.open_until, "break_elapsed")
            elif circuit.state is _HALF_OPEN and circuit.probes and min(circuit.probes.values()) <= now:
                self._transition(key, circuit, _OPEN, min(circuit.probes.values()), "probe_timed_out")
            else:
                return

    def _transition(self, key: KeyT, circuit: Circuit, new: CircuitState, at: float, reason: str) -> None:
        old, circuit.state = circuit.state, new
        circuit.epoch += 1
        # Every period starts afresh: a closed circuit with an empty window, probes from zero.
        circuit.window.reset()
        circuit.consecutive = circuit.probe_successes = 0
        circuit.probes.clear()
        if new is _OPEN:
            circuit.open_until = at + self.break_duration
        event = CircuitStateChanged(key, old, new, at, reason)
        for hook in (*self.hooks, *self._subscribers):
            try:
                hook(event)
            except Exception:
                _log.exception("circuit breaker hook %r failed on %r", hook, event)
