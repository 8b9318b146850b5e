"""Delays providers: values, jitter bounds, validation, and the latency-percentile provider."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aio_pipeline import (
    CircuitOpenError,
    ConnectError,
    Deadline,
    DeadlineExceededError,
    InvalidRequestError,
    OverloadedError,
    Response,
    TransportError,
    get,
    post,
)
from aio_pipeline.policy import (
    ConstantDelays,
    ExponentialBackoffDelays,
    LinearBackoffDelays,
    PercentileBasedRequestAttemptDelaysProvider,
    Result,
    constant_delays,
    delay_for,
    exponential_backoff_delays,
    latency_sample,
    linear_backoff_delays,
    linear_delays,
)


def test_constant() -> None:
    provider = constant_delays(delay=0.25)
    assert [provider(k) for k in (1, 2, 10)] == [0.25, 0.25, 0.25]
    assert constant_delays()(1) == 0.0


def test_linear_is_min_plus_attempt_times_multiplier_without_jitter() -> None:
    provider = LinearBackoffDelays(min_delay_seconds=0.1, delay_multiplier=0.1, jitter=0.0)
    assert [provider(k) for k in (1, 2, 3)] == pytest.approx([0.2, 0.3, 0.4])


def test_linear_delays_is_linear_backoff_delays_with_aio_request_defaults() -> None:
    assert linear_delays is linear_backoff_delays
    assert linear_delays() == LinearBackoffDelays(min_delay_seconds=0.0, delay_multiplier=0.05, jitter=0.2)


@given(st.integers(min_value=1, max_value=50), st.integers(min_value=0, max_value=2**32))
def test_linear_jitter_stays_within_its_share(attempt: int, seed: int) -> None:
    provider = LinearBackoffDelays(0.1, 0.1, 0.2, rng=random.Random(seed))
    base = 0.1 + attempt * 0.1
    assert base * 0.8 <= provider(attempt) <= base * 1.2


def test_linear_jitter_goes_both_ways() -> None:
    provider = LinearBackoffDelays(0.0, 1.0, 0.2, rng=random.Random(7))
    values = [provider(1) for _ in range(200)]
    assert min(values) < 0.9 and max(values) > 1.1


def test_exponential_doubles_up_to_the_cap_without_jitter() -> None:
    provider = ExponentialBackoffDelays(base_delay_seconds=0.1, multiplier=2.0, max_delay_seconds=1.0, jitter=0.0)
    assert [provider(k) for k in (1, 2, 3, 4, 5, 6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])
    assert provider(100_000) == 1.0  # no overflow on absurd attempt numbers


@given(st.integers(min_value=1, max_value=30), st.integers(min_value=0, max_value=2**32))
def test_exponential_full_jitter_is_between_zero_and_the_capped_delay(attempt: int, seed: int) -> None:
    provider = ExponentialBackoffDelays(0.05, 2.0, 5.0, jitter=1.0, rng=random.Random(seed))
    assert 0.0 <= provider(attempt) <= min(0.05 * 2 ** (attempt - 1), 5.0)


def test_exponential_factory_defaults() -> None:
    assert exponential_backoff_delays() == ExponentialBackoffDelays(0.05, 2.0, 5.0, 1.0)


@pytest.mark.parametrize(
    ("make", "name"),
    [
        (lambda: ConstantDelays(-0.1), "delay"),
        (lambda: ConstantDelays(math.nan), "delay"),
        (lambda: LinearBackoffDelays(min_delay_seconds=-1), "min_delay_seconds"),
        (lambda: LinearBackoffDelays(delay_multiplier=-0.05), "delay_multiplier"),
        (lambda: LinearBackoffDelays(jitter=1.5), "jitter"),
        (lambda: ExponentialBackoffDelays(base_delay_seconds=-1), "base_delay_seconds"),
        (lambda: ExponentialBackoffDelays(multiplier=0.5), "multiplier"),
        (lambda: ExponentialBackoffDelays(base_delay_seconds=2, max_delay_seconds=1), "max_delay_seconds"),
        (lambda: ExponentialBackoffDelays(jitter=-0.1), "jitter"),
        (lambda: PercentileBasedRequestAttemptDelaysProvider(percentile=1.0), "percentile"),
        (lambda: PercentileBasedRequestAttemptDelaysProvider(min_delay_seconds=-1), "min_delay_seconds"),
        (lambda: PercentileBasedRequestAttemptDelaysProvider(max_delay_seconds=0.01), "max_delay_seconds"),
        (lambda: PercentileBasedRequestAttemptDelaysProvider(window_seconds=0), "window_seconds"),
        (lambda: PercentileBasedRequestAttemptDelaysProvider(min_samples=0), "min_samples"),
        (lambda: PercentileBasedRequestAttemptDelaysProvider(max_keys=0), "max_keys"),
    ],
)
def test_bad_options_raise_value_error_naming_the_parameter(make: object, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        make()  # type: ignore[operator]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def percentile_provider(clock: Clock, **options: float) -> PercentileBasedRequestAttemptDelaysProvider:
    settings: dict[str, float] = {"min_delay_seconds": 0.001, "min_samples": 10, "window_seconds": 60.0, **options}
    return PercentileBasedRequestAttemptDelaysProvider(clock=clock, **settings)  # type: ignore[arg-type]


def test_percentile_is_its_minimum_until_enough_samples() -> None:
    """As aio-request's: with nothing learned yet it hedges at its minimum delay."""
    provider = percentile_provider(Clock())
    request = get("users/{id}", path_parameters={"id": "1"})
    assert provider(request, 1) == 0.001
    for _ in range(9):
        provider.observe(request, 0.02)
    assert provider(request, 1) == 0.001
    provider.observe(request, 0.02)
    assert provider(request, 1) == 0.02


def test_percentile_is_the_p95_of_the_window() -> None:
    provider = percentile_provider(Clock())
    request = get("x")
    for millis in range(1, 101):  # 1 ms .. 100 ms
        provider.observe(request, millis / 1000)
    assert provider(request, 1) == pytest.approx(0.095)
    assert provider(request, 2) == pytest.approx(0.095)  # the same delay between every two attempts


def test_percentile_is_clamped_to_floor_and_cap() -> None:
    clock = Clock()
    fast = percentile_provider(clock, min_delay_seconds=0.05)
    slow = percentile_provider(clock, max_delay_seconds=0.5)
    for _ in range(10):
        fast.observe(get("x"), 0.001)
        slow.observe(get("x"), 3.0)
    assert fast(get("x"), 1) == 0.05
    assert slow(get("x"), 1) == 0.5


def test_percentile_is_kept_per_method_and_route() -> None:
    provider = percentile_provider(Clock())
    for _ in range(10):
        provider.observe(get("users/{id}", path_parameters={"id": "1"}), 0.01)
        provider.observe(get("orders"), 0.2)
    assert provider(get("users/{id}", path_parameters={"id": "2"}), 1) == 0.01  # the route, not the path
    assert provider(get("orders?page=2"), 1) == 0.2  # the query is not part of the route
    assert provider(post("orders"), 1) == 0.001  # another method knows nothing yet: the minimum


def test_old_samples_slide_out_of_the_window() -> None:
    clock = Clock()
    provider = percentile_provider(clock, window_seconds=10.0)
    for _ in range(10):
        provider.observe(get("x"), 0.5)
    clock.now = 5.0
    for _ in range(10):
        provider.observe(get("x"), 0.01)
    assert provider(get("x"), 1) == 0.5  # p95 of twenty samples, half of them slow
    clock.now = 10.5
    assert provider(get("x"), 1) == 0.01  # the slow ones have expired
    clock.now = 100.0
    assert provider(get("x"), 1) == 0.001 and provider.sample_count(get("x")) == 0


def test_samples_per_key_are_bounded() -> None:
    provider = percentile_provider(Clock(), max_samples=50)
    for index in range(1000):
        provider.observe(get("x"), index / 1000)
    assert provider.sample_count(get("x")) == 50
    assert provider(get("x"), 1) == pytest.approx(0.997)  # only the newest 50 are left


def test_keys_are_bounded_least_recently_observed_first_out() -> None:
    provider = percentile_provider(Clock(), max_keys=3, min_samples=1)
    for route in ("a", "b", "c"):
        provider.observe(get(route), 0.1)
    provider.observe(get("a"), 0.1)  # a is now the most recent
    provider.observe(get("d"), 0.1)  # evicts b
    assert [provider.sample_count(get(route)) for route in "abcd"] == [2, 0, 1, 1]


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_observations_are_ignored(bad: float) -> None:
    provider = percentile_provider(Clock())
    provider.observe(get("x"), bad)
    assert provider.sample_count(get("x")) == 0


def test_delay_for_dispatches_on_the_provider_kind() -> None:
    plain = constant_delays(delay=0.3)
    learning = percentile_provider(Clock(), min_samples=1)
    learning.observe(get("x"), 0.2)
    assert delay_for(plain, get("x"), 1) == 0.3
    assert delay_for(learning, get("x"), 1) == 0.2


# --- latency_sample: what one attempt tells a latency tracker --------------------------------------

# An attempt started at 10.0 (loop clock) with a deadline at 10.3.
STARTED = 10.0
WITH_DEADLINE = get("x").replace(deadline=Deadline(10.3))


@pytest.mark.parametrize(
    ("result", "accepted", "elapsed", "expected"),
    [
        (Response(200), True, 0.12, 0.12),  # an answer: exactly its latency
        (Response(404), True, 0.12, 0.12),  # accepted, so a useful answer
        (Response(503), False, 0.01, None),  # a rejection is not how long an answer takes
        (DeadlineExceededError("no response"), False, 0.3, 0.3),  # cut by its deadline: at least
        (CircuitOpenError("open", retry_after=1.0), True, 0.0, None),  # refused before sending
        (OverloadedError("shed", retry_after=1.0), True, 0.0, None),
        (InvalidRequestError("bad URL"), True, 0.0, None),
        (ConnectError("refused"), False, 0.002, None),  # a fault: its time is the fault's
        (TransportError("reset"), False, 0.2, None),
        (ValueError("a bug"), True, 0.0, None),
        (None, False, 0.3, 0.3),  # cancelled at its deadline, whoever cancelled it
        (None, False, 0.2985, 0.2985),  # ... or within the low-timeout threshold of it
        (None, False, 0.1, None),  # cancelled well before it: a caller giving up says nothing
    ],
)
def test_defect_04_the_one_rule_of_what_an_attempt_tells_a_latency_tracker(
    result: Result | None, accepted: bool, elapsed: float, expected: float | None
) -> None:
    seconds = latency_sample(WITH_DEADLINE, result, accepted=accepted, started_at=STARTED, elapsed=elapsed)
    assert seconds == expected


@pytest.mark.parametrize("result", [DeadlineExceededError("deadline expired before sending"), None])
def test_defect_04_an_attempt_whose_deadline_expired_before_it_could_be_sent_is_no_sample(
    result: Result | None,
) -> None:
    expired = get("x").replace(deadline=Deadline(STARTED + 0.004))  # under the 5 ms threshold
    assert latency_sample(expired, result, accepted=False, started_at=STARTED, elapsed=0.004) is None


def test_a_hedging_loser_is_a_sample_once_it_has_run_as_long_as_the_winner_took() -> None:
    no_deadline = get("x")
    assert latency_sample(no_deadline, None, accepted=False, started_at=STARTED, elapsed=0.2, lost_to=0.15) == 0.2
    assert latency_sample(no_deadline, None, accepted=False, started_at=STARTED, elapsed=0.1, lost_to=0.15) is None
    assert latency_sample(no_deadline, None, accepted=False, started_at=STARTED, elapsed=5.0) is None
    # With no deadline a DeadlineExceededError is someone's own timeout (a user's per-attempt
    # scope): still cut at that time.
    cut = DeadlineExceededError("per-attempt timeout")
    assert latency_sample(no_deadline, cut, accepted=False, started_at=STARTED, elapsed=0.5) == 0.5
