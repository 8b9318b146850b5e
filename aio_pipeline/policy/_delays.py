"""Delays providers: how long to wait before the next attempt.

A provider is called with ``attempt``, the number of attempts already made (1 before the
second attempt, 2 before the third, ...), as in aio-request. Sequential waits that long after an
attempt fails; parallel starts attempt ``attempt + 1`` that long after attempt ``attempt``
started. Plain providers are ``Callable[[int], float]``; a ``RequestAttemptDelaysProvider`` also
sees the request and learns from observed latencies. Randomness comes from ``rng`` (a
``random.Random``; the module-level generator when ``None``) so tests can seed it.
"""

from __future__ import annotations

import abc
import bisect
import math
import random
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import InitVar, dataclass, field
from typing import TypeAlias

from ..errors import DeadlineExceededError
from ..http import Request, Response
from ..propagation import LOW_TIMEOUT_THRESHOLD, loop_time
from ._classify import Result

__all__ = [
    "ConstantDelays",
    "DelaysProvider",
    "ExponentialBackoffDelays",
    "LinearBackoffDelays",
    "PercentileBasedRequestAttemptDelaysProvider",
    "RequestAttemptDelaysProvider",
    "RequestResponseObserver",
    "constant_delays",
    "delay_for",
    "exponential_backoff_delays",
    "latency_sample",
    "linear_backoff_delays",
    "linear_delays",
]

DelaysProvider: TypeAlias = Callable[[int], float]


def _check(name: str, value: float, *, low: float = 0.0, high: float = math.inf) -> None:
    if not (low <= value <= high):  # also refuses NaN
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


def _uniform(rng: random.Random | None) -> float:
    return (rng or random).random()


@dataclass(frozen=True, slots=True)
class ConstantDelays:
    """The same ``delay`` before every attempt.

    Options:
        delay: seconds, >= 0; default 0.
    """

    delay: float = 0.0

    def __post_init__(self) -> None:
        _check("delay", self.delay)

    def __call__(self, attempt: int) -> float:
        return self.delay


@dataclass(frozen=True, slots=True)
class LinearBackoffDelays:
    """``min_delay_seconds + attempt * delay_multiplier``, with jitter, as aio-request's ``linear_delays``.

    The delay is randomly lengthened or shortened by up to ``jitter`` of itself.

    Options:
        min_delay_seconds: seconds, >= 0, added to every delay; default 0.
        delay_multiplier: seconds per attempt made, >= 0; default 0.05.
        jitter: a fraction 0..1 of the delay (0.2: +-20%); default 0.2.
        rng: a ``random.Random`` the jitter is drawn from (seed it in tests); default ``None``:
            the ``random`` module's generator.
    """

    min_delay_seconds: float = 0.0
    delay_multiplier: float = 0.05
    jitter: float = 0.2
    rng: random.Random | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check("min_delay_seconds", self.min_delay_seconds)
        _check("delay_multiplier", self.delay_multiplier)
        _check("jitter", self.jitter, high=1.0)

    def __call__(self, attempt: int) -> float:
        delay = self.min_delay_seconds + attempt * self.delay_multiplier
        return delay * (1.0 + self.jitter * (2.0 * _uniform(self.rng) - 1.0))


@dataclass(frozen=True, slots=True)
class ExponentialBackoffDelays:
    """``base_delay_seconds * multiplier ** (attempt - 1)``, at most ``max_delay_seconds``, with jitter.

    The capped delay ``d`` is then drawn uniformly from ``[(1 - jitter) * d, d]``: ``jitter=1``
    is "full jitter", which spreads a crowd of retrying clients best; ``jitter=0`` is none.

    Options:
        base_delay_seconds: seconds, >= 0: the delay after the first attempt; default 0.05.
        multiplier: the factor per further attempt, >= 1; default 2.
        max_delay_seconds: the cap, seconds, >= ``base_delay_seconds``; default 5.
        jitter: a fraction 0..1 of the delay; default 1 (full jitter).
        rng: a ``random.Random`` the jitter is drawn from (seed it in tests); default ``None``:
            the ``random`` module's generator.
    """

    base_delay_seconds: float = 0.05
    multiplier: float = 2.0
    max_delay_seconds: float = 5.0
    jitter: float = 1.0
    rng: random.Random | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check("base_delay_seconds", self.base_delay_seconds)
        _check("multiplier", self.multiplier, low=1.0)
        _check("max_delay_seconds", self.max_delay_seconds, low=self.base_delay_seconds)
        _check("jitter", self.jitter, high=1.0)

    def __call__(self, attempt: int) -> float:
        try:
            delay = min(self.base_delay_seconds * self.multiplier ** max(attempt - 1, 0), self.max_delay_seconds)
        except OverflowError:  # a huge attempt number: the cap applies anyway
            delay = self.max_delay_seconds
        return delay * (1.0 - self.jitter * _uniform(self.rng))


def constant_delays(*, delay: float = 0.0) -> ConstantDelays:
    """The same delay before every attempt: a ``ConstantDelays``.

    Options:
        delay: seconds, >= 0; default 0.
    """
    return ConstantDelays(delay)


def linear_backoff_delays(
    *, min_delay_seconds: float = 0.0, delay_multiplier: float = 0.05, jitter: float = 0.2
) -> LinearBackoffDelays:
    """``min_delay_seconds + attempt * delay_multiplier``, with jitter: a ``LinearBackoffDelays``.

    aio-request's ``linear_delays`` (also ours, as an alias); the strategies' default.

    Options:
        min_delay_seconds: seconds, >= 0, added to every delay; default 0.
        delay_multiplier: seconds per attempt made, >= 0; default 0.05.
        jitter: a fraction 0..1 of the delay (0.2: +-20%); default 0.2.
    """
    return LinearBackoffDelays(min_delay_seconds, delay_multiplier, jitter)


#: aio-request's name for ``linear_backoff_delays``.
linear_delays = linear_backoff_delays


def exponential_backoff_delays(
    *, base_delay_seconds: float = 0.05, multiplier: float = 2.0, max_delay_seconds: float = 5.0, jitter: float = 1.0
) -> ExponentialBackoffDelays:
    """Capped exponential backoff with jitter: an ``ExponentialBackoffDelays``.

    ``base_delay_seconds * multiplier ** (attempt - 1)``, at most ``max_delay_seconds``, then
    drawn uniformly from ``[(1 - jitter) * d, d]``.

    Options:
        base_delay_seconds: seconds, >= 0: the delay after the first attempt; default 0.05.
        multiplier: the factor per further attempt, >= 1; default 2.
        max_delay_seconds: the cap, seconds, >= ``base_delay_seconds``; default 5.
        jitter: a fraction 0..1 of the delay; default 1 (full jitter).
    """
    return ExponentialBackoffDelays(base_delay_seconds, multiplier, max_delay_seconds, jitter)


class RequestResponseObserver(abc.ABC):
    """aio-request's observer interface: told each attempt's ``(request, response)``."""

    __slots__ = ()

    @abc.abstractmethod
    def observe(self, request: Request, response: Response | float) -> None:
        """An attempt of ``request`` got ``response`` (or took ``response`` seconds)."""


class RequestAttemptDelaysProvider(abc.ABC):
    """A provider that sees the request, and is told the latencies that strategies observe."""

    __slots__ = ()

    @abc.abstractmethod
    def __call__(self, request: Request, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` of ``request``."""

    def observe(self, request: Request, response: Response | float) -> None:
        """An attempt of ``request`` took ``response`` seconds (or at least that long, if it was
        cut short); or, as aio-request's ``RequestResponseObserver`` is told, it got ``response``.

        Our strategies pass seconds, for the attempts ``latency_sample`` says are samples, and
        only those. Does nothing by default.
        """


def _seconds_of(response: Response | float) -> float | None:
    """The latency sample ``observe`` was given: seconds as they are; a response's ``elapsed``
    when it is a 2xx that was timed (aio-request's rule: only successes are latencies)."""
    if isinstance(response, Response):
        elapsed = response.elapsed
        return elapsed if response.is_successful() and elapsed >= 0 else None
    return response


@dataclass(eq=False, kw_only=True)
class PercentileBasedRequestAttemptDelaysProvider(RequestAttemptDelaysProvider, RequestResponseObserver):
    """Hedge at a ``percentile`` of recently observed latency, per method and route.

    Keeps the last ``window_size_seconds`` of observations per key, at most ``max_samples``
    each, for at most ``max_keys``. With fewer than ``min_samples`` for a key it knows nothing
    yet and answers ``min_delay_seconds``, as aio-request does with no data (a percentile of a
    handful of samples is noise); otherwise the percentile, clamped to ``[min_delay_seconds,
    max_delay_seconds]``. The same delay applies between every two attempts: hedges start one
    delay apart, which is the schedule aio-request's ``delay * attempt``, counted from the first
    attempt, gives. Strategies report what ``latency_sample`` says: answers, and attempts cut by
    their deadline or outrun by a hedge as "at least this slow", so the percentile does not drift
    low when the endpoint slows down; never instant refusals (an open circuit, an invalid
    request), which say nothing of the endpoint. ``observe(request, response)`` also takes a
    response, as aio-request's observer does: a 2xx with a measured ``elapsed`` is a sample.

    Options:
        percentile: a fraction in (0, 1) (0.95: the 95th percentile); default 0.95.
        min_delay_seconds: seconds, >= 0: the least delay, and the answer with too few samples;
            default 0.05.
        max_delay_seconds: seconds, >= ``min_delay_seconds``: the most delay; default 10.
        window_size_seconds: how long an observation is kept, seconds, > 0; default 300.
        buckets_count: a count > 0, taken for aio-request's signature and checked, but not
            needed: the window slides per sample; default 2.
        min_samples: observations of a key needed before its percentile is used, a count > 0;
            default 20.
        max_samples: observations kept per key, a count > 0 (the oldest dropped); default 1000.
        max_keys: method-and-route keys kept, a count > 0 (the least recently used dropped);
            default 1000.
        clock: ``() -> seconds``, monotonic; default the running loop's (``loop_time``).
        window_seconds: the older name of ``window_size_seconds``, seconds; default ``None``
            (``window_size_seconds`` applies).
    """

    percentile: float = 0.95
    min_delay_seconds: float = 0.05
    max_delay_seconds: float = 10.0
    window_size_seconds: float = 300.0
    buckets_count: int = 2
    min_samples: int = 20
    max_samples: int = 1000
    max_keys: int = 1000
    clock: Callable[[], float] = field(default=loop_time, repr=False)
    window_seconds: InitVar[float | None] = None
    _keys: OrderedDict[tuple[str, str], _Samples] = field(default_factory=OrderedDict, init=False, repr=False)

    def __post_init__(self, window_seconds: float | None) -> None:
        if not 0.0 < self.percentile < 1.0:
            raise ValueError(f"percentile must be in (0, 1), got {self.percentile!r}")
        _check("min_delay_seconds", self.min_delay_seconds)
        _check("max_delay_seconds", self.max_delay_seconds, low=self.min_delay_seconds)
        if window_seconds is not None:
            _check("window_seconds", window_seconds, low=1e-9)
            self.window_size_seconds = window_seconds
        _check("window_size_seconds", self.window_size_seconds, low=1e-9)
        for name in ("buckets_count", "min_samples", "max_samples", "max_keys"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    def __call__(self, request: Request, attempt: int) -> float:
        samples = self._keys.get((request.method, request.route))
        if samples is None:
            return self.min_delay_seconds
        samples.expire(self.clock() - self.window_size_seconds)
        if len(samples.ordered) < self.min_samples:
            return self.min_delay_seconds
        rank = math.ceil(self.percentile * len(samples.ordered))  # nearest-rank percentile
        return min(max(samples.ordered[rank - 1], self.min_delay_seconds), self.max_delay_seconds)

    def observe(self, request: Request, response: Response | float) -> None:
        seconds = _seconds_of(response)
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            return
        key = (request.method, request.route)
        samples = self._keys.get(key)
        if samples is None:
            samples = self._keys[key] = _Samples()
            if len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(key)
        now = self.clock()
        samples.expire(now - self.window_size_seconds)
        samples.add(now, seconds, self.max_samples)

    def sample_count(self, request: Request) -> int:
        """How many observations are kept for the request's method and route."""
        samples = self._keys.get((request.method, request.route))
        return 0 if samples is None else len(samples.ordered)


@dataclass(slots=True)
class _Samples:
    """Observations of one key, by arrival (to expire them) and sorted (for the percentile)."""

    arrivals: deque[tuple[float, float]] = field(default_factory=deque)
    ordered: list[float] = field(default_factory=list)

    def add(self, at: float, seconds: float, limit: int) -> None:
        if len(self.arrivals) >= limit:
            self._drop_oldest()
        self.arrivals.append((at, seconds))
        bisect.insort(self.ordered, seconds)

    def expire(self, before: float) -> None:
        while self.arrivals and self.arrivals[0][0] < before:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, seconds = self.arrivals.popleft()
        del self.ordered[bisect.bisect_left(self.ordered, seconds)]


def delay_for(provider: DelaysProvider | RequestAttemptDelaysProvider, request: Request, attempt: int) -> float:
    """Ask ``provider`` for the wait after ``attempt`` attempts of ``request``."""
    if isinstance(provider, RequestAttemptDelaysProvider):
        return provider(request, attempt)
    return provider(attempt)


def latency_sample(
    request: Request,
    result: Result | None,
    *,
    accepted: bool,
    started_at: float,
    elapsed: float,
    lost_to: float | None = None,
) -> float | None:
    """The seconds one attempt tells a latency tracker, or ``None`` when it tells nothing.

    The one rule both strategies follow. ``request`` is the attempt's own (its deadline is the
    attempt's); ``result`` what it produced, ``None`` when it was cancelled ``elapsed`` seconds
    after it started at ``started_at`` (loop clock); ``accepted``, the classifier's verdict.
    Only an attempt that reached the endpoint is a sample, and only when its time says how
    long the endpoint takes:

    - an accepted response: exactly its latency;
    - an attempt cut by its deadline, as "at least this slow": a ``DeadlineExceededError`` it
      raised, or a cancellation that came when less than the low-timeout threshold was left,
      whoever cancelled (the transport's timer, ``ClientDeadline`` around the strategy, a
      caller's own timeout at the deadline), provided it had at least that threshold when it
      started (else the deadline expired before it could be sent);
    - an attempt cancelled because another answered in ``lost_to`` seconds, once it had run at
      least that long: also "at least this slow".

    Not samples: a rejected response (a fast 503 is not the time a useful answer takes); any
    other exception (an open circuit or any ``RejectedError``, an ``InvalidRequestError``: all
    refused before sending; a network fault, whose time is the fault's); an attempt cancelled
    for another reason (a caller giving up early says nothing of the endpoint).
    """
    if isinstance(result, Response):
        return elapsed if accepted else None
    if result is not None and not isinstance(result, DeadlineExceededError):
        return None
    deadline = request.deadline
    if deadline is not None and deadline.deadline_at - started_at < LOW_TIMEOUT_THRESHOLD:
        return None  # expired before it could be sent
    if result is not None:
        return elapsed
    if deadline is not None and deadline.deadline_at - (started_at + elapsed) < LOW_TIMEOUT_THRESHOLD:
        return elapsed  # cancelled at its deadline
    if lost_to is not None and elapsed >= lost_to:
        return elapsed
    return None
