"""The circuit breaker's state machine, driven by an injected clock (no event loop) where it
can be, and by looptime's virtual loop clock where cancellation and waiting are the point."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import pytest
from freezegun import freeze_time
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from aio_pipeline import CircuitOpenError, InvalidRequestError
from aio_pipeline.circuit import (
    CircuitPermit,
    CircuitState,
    CircuitStateChanged,
    DefaultCircuitBreaker,
    NoopCircuitBreaker,
    SlidingWindow,
)

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


class Clock:
    """A hand-moved monotonic clock, in seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def events() -> list[CircuitStateChanged[str]]:
    return []


def breaker_on(
    clock: Clock, events: list[CircuitStateChanged[str]] | None = None, **options: Any
) -> DefaultCircuitBreaker[str, None]:
    """The seed's breaker (1 s break and window, 2 attempts minimum, 50%) with ``options``."""
    settings: dict[str, Any] = {
        "break_duration": 1.0,
        "sampling_duration": 1.0,
        "minimum_throughput": 2,
        "failure_threshold": 0.5,
    }
    hooks = [events.append] if events is not None else []
    return DefaultCircuitBreaker[str, None](clock=clock, hooks=hooks, **{**settings, **options})


def record(breaker: DefaultCircuitBreaker[str, None], *outcomes: str, key: str = "a") -> None:
    """One attempt per outcome (``"ok"``, ``"fail"``, ``"cancel"`` or ``"unused"``), each
    reported at once."""
    for outcome in outcomes:
        permit = breaker.acquire(key)
        getattr(permit, {"ok": "success", "fail": "failure", "cancel": "cancelled", "unused": "unused"}[outcome])()


def refusal(breaker: DefaultCircuitBreaker[str, None], key: str = "a") -> CircuitOpenError:
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire(key)
    return caught.value


def transitions(events: list[CircuitStateChanged[str]]) -> list[tuple[CircuitState, CircuitState, float, str]]:
    return [(event.old, event.new, event.at, event.reason) for event in events]


# --- the familiar surface ------------------------------------------------------------------------


def test_the_seed_example_constructs_and_starts_with_no_circuits() -> None:
    breaker = DefaultCircuitBreaker[str, int](
        break_duration=1.0, sampling_duration=1.0, minimum_throughput=2, failure_threshold=0.5
    )
    assert breaker.state == {}
    assert breaker.windows_count == 10
    assert breaker.half_open_probes == 1
    assert breaker.max_keys == 1000


def test_states_are_strings_for_logs_and_metrics() -> None:
    assert [str(state) for state in CircuitState] == ["open", "half_open", "closed"]


# --- CLOSED -> OPEN ------------------------------------------------------------------------------


def test_opens_when_the_failure_ratio_reaches_the_threshold(clock: Clock, events: list[Any]) -> None:
    breaker = breaker_on(clock, events)
    record(breaker, "ok")
    clock.advance(0.1)
    record(breaker, "fail")  # 1 of 2 failed: 0.5 >= 0.5

    assert breaker.state == {"a": OPEN}
    assert transitions(events) == [(CLOSED, OPEN, 0.1, "failure_ratio")]


def test_stays_closed_below_the_threshold(clock: Clock) -> None:
    breaker = breaker_on(clock)
    record(breaker, "ok", "ok", "ok", "fail", "ok", "ok", "fail")  # 2 of 7
    assert breaker.state == {"a": CLOSED}


def test_stays_closed_below_the_minimum_throughput(clock: Clock) -> None:
    breaker = breaker_on(clock, minimum_throughput=3)
    record(breaker, "fail", "fail")  # 100% failures, but only 2 attempts
    assert breaker.state == {"a": CLOSED}
    record(breaker, "fail")
    assert breaker.state == {"a": OPEN}


def test_a_threshold_of_one_opens_only_when_every_attempt_failed(clock: Clock) -> None:
    breaker = breaker_on(clock, failure_threshold=1.0)
    record(breaker, "ok", "fail", "fail", "fail")
    assert breaker.state == {"a": CLOSED}
    clock.advance(1.0)  # the success slides out
    record(breaker, "fail", "fail")
    assert breaker.state == {"a": OPEN}


def test_a_cancelled_attempt_while_closed_counts_as_nothing(clock: Clock) -> None:
    breaker = breaker_on(clock)
    record(breaker, "fail", *["cancel"] * 20)
    assert breaker.state == {"a": CLOSED}  # 1 failure, and the cancellations are not successes
    record(breaker, "fail")
    assert breaker.state == {"a": OPEN}  # ... nor failures: 2 of 2


def test_only_the_first_report_of_a_permit_counts(clock: Clock) -> None:
    breaker = breaker_on(clock)
    permit = breaker.acquire("a")
    permit.failure()
    permit.failure()
    permit.success()
    assert breaker.state == {"a": CLOSED}  # one failure in the window, not two


# --- the sliding window --------------------------------------------------------------------------


def test_failures_slide_out_of_the_window(clock: Clock) -> None:
    breaker = breaker_on(clock)  # 1 s in 10 buckets of 0.1 s
    record(breaker, "fail")
    clock.advance(1.0)  # the first failure's bucket has left the window
    record(breaker, "fail")
    assert breaker.state == {"a": CLOSED}
    clock.advance(0.95)  # the second one is still in
    record(breaker, "fail")
    assert breaker.state == {"a": OPEN}


def test_successes_slide_out_too(clock: Clock) -> None:
    breaker = breaker_on(clock)
    record(breaker, "ok", "ok", "ok", "ok")
    clock.advance(1.0)
    record(breaker, "ok", "fail")  # the old successes no longer dilute the ratio
    assert breaker.state == {"a": OPEN}


def test_buckets_are_aligned_so_a_sample_lives_between_one_bucket_short_of_and_the_whole_window() -> None:
    window = SlidingWindow(1.0, 4)  # buckets of 0.25 s
    window.record(0.30, failed=True)  # bucket [0.25, 0.5)
    assert window.counts(1.2499) == (0, 1)
    assert window.counts(1.25) == (0, 0)  # 0.95 s later: gone, as the bucket's start is 1 s old


# --- OPEN ----------------------------------------------------------------------------------------


def test_open_refuses_with_the_time_left_of_the_break(clock: Clock) -> None:
    breaker = breaker_on(clock, break_duration=5.0)
    record(breaker, "fail", "fail")
    clock.advance(2.0)
    error = refusal(breaker)
    assert error.retry_after == pytest.approx(3.0)
    clock.advance(2.999)
    assert refusal(breaker).retry_after == pytest.approx(0.001)


def test_the_refusal_carries_the_request(clock: Clock) -> None:
    breaker = breaker_on(clock)
    record(breaker, "fail", "fail")
    request = object()
    with pytest.raises(CircuitOpenError) as caught:
        breaker.acquire("a", request=request)
    assert caught.value.request is request


def test_late_outcomes_of_attempts_admitted_before_the_break_are_ignored(clock: Clock) -> None:
    breaker = breaker_on(clock)
    in_flight = [breaker.acquire("a") for _ in range(3)]
    record(breaker, "fail", "fail")
    assert breaker.state == {"a": OPEN}
    in_flight[0].success()  # not evidence that the endpoint is back
    in_flight[1].failure()
    assert breaker.state == {"a": OPEN}
    clock.advance(1.0)
    record(breaker, "ok")  # the probe closes it
    in_flight[2].failure()  # from before the break: does not count in the new window
    record(breaker, "fail")
    assert breaker.state == {"a": CLOSED}


# --- OPEN -> HALF_OPEN -> CLOSED or OPEN ---------------------------------------------------------


def test_after_the_break_one_probe_goes_and_its_success_closes(clock: Clock, events: list[Any]) -> None:
    breaker = breaker_on(clock, events)
    record(breaker, "fail", "fail")
    clock.advance(0.999)
    refusal(breaker)
    clock.advance(0.001)

    probe = breaker.acquire("a")
    assert probe.is_probe
    assert breaker.state == {"a": HALF_OPEN}
    probe.success()

    assert breaker.state == {"a": CLOSED}
    assert transitions(events) == [
        (CLOSED, OPEN, 0.0, "failure_ratio"),
        (OPEN, HALF_OPEN, 1.0, "break_elapsed"),
        (HALF_OPEN, CLOSED, 1.0, "probes_succeeded"),
    ]
    record(breaker, "fail")  # the window starts empty: one failure is below the minimum
    assert breaker.state == {"a": CLOSED}


def test_a_failed_probe_opens_again_for_a_whole_break(clock: Clock, events: list[Any]) -> None:
    breaker = breaker_on(clock, events)
    record(breaker, "fail", "fail")
    clock.advance(1.5)
    probe = breaker.acquire("a")
    clock.advance(0.25)
    probe.failure()

    assert breaker.state == {"a": OPEN}
    assert refusal(breaker).retry_after == pytest.approx(1.0)
    assert transitions(events)[-1] == (HALF_OPEN, OPEN, 1.75, "probe_failed")


def test_a_cancelled_probe_counts_as_a_failure(clock: Clock) -> None:
    breaker = breaker_on(clock)
    record(breaker, "fail", "fail")
    clock.advance(1.0)
    breaker.acquire("a").cancelled()
    assert breaker.state == {"a": OPEN}


def test_defect_05_an_unused_probe_keeps_the_circuit_half_open_and_frees_its_slot(
    clock: Clock, events: list[Any]
) -> None:
    breaker = breaker_on(clock, events)
    record(breaker, "fail", "fail")
    clock.advance(1.0)
    probe = breaker.acquire("a")
    assert probe.is_probe
    refusal(breaker)  # the one probe slot is taken while it runs
    clock.advance(0.2)
    probe.unused()  # e.g. an invalid request: it never reached the endpoint

    assert breaker.state == {"a": HALF_OPEN}
    second = breaker.acquire("a")
    assert second.is_probe  # the slot went back
    second.success()
    assert transitions(events) == [
        (CLOSED, OPEN, 0.0, "failure_ratio"),
        (OPEN, HALF_OPEN, 1.0, "break_elapsed"),
        (HALF_OPEN, CLOSED, 1.2, "probes_succeeded"),
    ]


def test_defect_05_an_unused_permit_while_closed_counts_as_nothing(clock: Clock, events: list[Any]) -> None:
    # Neither a failure (the circuit would open at two in a row) nor a success (which would
    # reset the consecutive count, and add to the window's throughput).
    breaker = breaker_on(clock, events, consecutive_failures=2, minimum_throughput=3)
    record(breaker, "fail", "unused", "unused", "fail")
    assert transitions(events) == [(CLOSED, OPEN, 0.0, "consecutive_failures")]
    breaker = breaker_on(clock, minimum_throughput=2)
    record(breaker, "ok", "unused", "unused", "unused")
    clock.advance(0.1)
    record(breaker, "fail")  # 1 failure in 2 samples: the unused permits were not samples
    assert breaker.state == {"a": OPEN}


def test_the_break_ending_is_dated_when_it_was_due_not_when_noticed(clock: Clock, events: list[Any]) -> None:
    breaker = breaker_on(clock, events)
    record(breaker, "fail", "fail")
    clock.advance(60.0)
    assert breaker.state == {"a": HALF_OPEN}
    assert transitions(events)[-1] == (OPEN, HALF_OPEN, 1.0, "break_elapsed")


def test_concurrent_attempts_while_half_open_get_one_probe(clock: Clock) -> None:
    breaker = breaker_on(clock, probe_timeout=3.0)
    record(breaker, "fail", "fail")
    clock.advance(1.0)
    probe = breaker.acquire("a")
    clock.advance(0.5)
    refused = [refusal(breaker) for _ in range(5)]
    assert {error.retry_after for error in refused} == {2.5}  # when the probe's lease runs out
    probe.success()
    assert breaker.state == {"a": CLOSED}
    record(breaker, "ok", "ok", "ok")


def test_several_probes_must_all_succeed_to_close(clock: Clock) -> None:
    breaker = breaker_on(clock, half_open_probes=3)
    record(breaker, "fail", "fail")
    clock.advance(1.0)
    probes = [breaker.acquire("a") for _ in range(3)]
    assert all(probe.is_probe for probe in probes)
    refusal(breaker)
    probes[0].success()
    refusal(breaker)  # a finished probe's slot is not handed out again
    probes[1].success()
    assert breaker.state == {"a": HALF_OPEN}
    probes[2].success()
    assert breaker.state == {"a": CLOSED}


def test_one_failed_probe_of_several_opens_and_the_others_no_longer_count(clock: Clock) -> None:
    breaker = breaker_on(clock, half_open_probes=2)
    record(breaker, "fail", "fail")
    clock.advance(1.0)
    first, second = breaker.acquire("a"), breaker.acquire("a")
    first.failure()
    second.success()
    assert breaker.state == {"a": OPEN}


def test_a_probe_that_never_reports_times_out_as_a_failure(clock: Clock, events: list[Any]) -> None:
    breaker = breaker_on(clock, events, probe_timeout=2.0)
    record(breaker, "fail", "fail")
    clock.advance(1.0)
    hung = breaker.acquire("a")
    clock.advance(1.999)
    assert breaker.state == {"a": HALF_OPEN}
    clock.advance(0.001)
    assert breaker.state == {"a": OPEN}  # it cannot stay half-open forever
    assert transitions(events)[-1] == (HALF_OPEN, OPEN, 3.0, "probe_timed_out")

    clock.advance(1.0)
    probe = breaker.acquire("a")  # a whole break later, a new probe
    hung.success()  # too late: says nothing about this period
    assert breaker.state == {"a": HALF_OPEN}
    probe.success()
    assert breaker.state == {"a": CLOSED}


def test_probe_timeout_defaults_to_the_break_duration(clock: Clock) -> None:
    breaker = breaker_on(clock, break_duration=4.0)
    record(breaker, "fail", "fail")
    clock.advance(4.0)
    breaker.acquire("a")
    clock.advance(3.9)
    assert breaker.state == {"a": HALF_OPEN}
    clock.advance(0.1)
    assert breaker.state == {"a": OPEN}


def test_a_probe_timed_out_long_ago_leaves_the_circuit_ready_for_the_next_probe(clock: Clock) -> None:
    breaker = breaker_on(clock)
    record(breaker, "fail", "fail")
    clock.advance(1.0)
    breaker.acquire("a")
    clock.advance(3600.0)  # timed out at 2.0, its break ended at 3.0
    assert breaker.acquire("a").is_probe


# --- consecutive failures ------------------------------------------------------------------------


def test_consecutive_failures_open_a_circuit_whose_traffic_never_reaches_the_minimum(clock: Clock) -> None:
    breaker = breaker_on(clock, minimum_throughput=100, consecutive_failures=3, sampling_duration=10.0)
    for _ in range(2):
        record(breaker, "fail")
        clock.advance(60.0)  # far apart: never two in one window
    assert breaker.state == {"a": CLOSED}
    record(breaker, "fail")
    assert breaker.state == {"a": OPEN}


def test_a_success_resets_the_consecutive_count(clock: Clock, events: list[Any]) -> None:
    breaker = breaker_on(clock, events, minimum_throughput=100, consecutive_failures=2)
    record(breaker, "fail", "ok", "fail", "cancel", "ok", "fail")
    assert breaker.state == {"a": CLOSED}
    record(breaker, "fail")
    assert transitions(events) == [(CLOSED, OPEN, 0.0, "consecutive_failures")]


def test_the_consecutive_count_starts_again_after_closing(clock: Clock) -> None:
    breaker = breaker_on(clock, minimum_throughput=100, consecutive_failures=2)
    record(breaker, "fail", "fail")
    clock.advance(1.0)
    record(breaker, "ok")  # the probe closes it
    record(breaker, "fail")
    assert breaker.state == {"a": CLOSED}


# --- keys ----------------------------------------------------------------------------------------


def test_each_key_has_its_own_circuit(clock: Clock) -> None:
    breaker = breaker_on(clock)
    record(breaker, "fail", "fail", key="a")
    record(breaker, "ok", "ok", "fail", key="b")
    assert breaker.state == {"a": OPEN, "b": CLOSED}
    assert breaker.acquire("b") is not None


def test_least_recently_used_keys_are_forgotten_past_max_keys(clock: Clock) -> None:
    breaker = breaker_on(clock, max_keys=2)
    record(breaker, "fail", "fail", key="a")
    record(breaker, "ok", key="b")
    refusal(breaker, "a")  # a refused attempt is a use too: "a" is now the most recent
    assert list(breaker.state) == ["b", "a"]
    record(breaker, "ok", key="c")
    assert breaker.state == {"a": OPEN, "c": CLOSED}
    record(breaker, "ok", key="b")  # "b" comes back closed, and "a" makes room
    assert breaker.state == {"c": CLOSED, "b": CLOSED}


def test_a_permit_outliving_its_forgotten_key_reports_into_nothing(clock: Clock, events: list[Any]) -> None:
    breaker = breaker_on(clock, events, max_keys=1)
    record(breaker, "fail")
    permit = breaker.acquire("a")
    record(breaker, "ok", key="b")
    permit.failure()
    assert breaker.state == {"b": CLOSED}
    assert events == []


# --- hooks ---------------------------------------------------------------------------------------


def test_a_raising_hook_is_logged_and_the_others_still_run(clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[CircuitStateChanged[str]] = []

    def broken(event: CircuitStateChanged[str]) -> None:
        raise RuntimeError("hook bug")

    breaker = DefaultCircuitBreaker[str, None](
        break_duration=1.0,
        sampling_duration=1.0,
        minimum_throughput=1,
        failure_threshold=1.0,
        clock=clock,
        hooks=[broken, seen.append],
    )
    with caplog.at_level(logging.ERROR, logger="aio_pipeline.circuit"):
        record(breaker, "fail")

    assert breaker.state == {"a": OPEN}
    assert [event.new for event in seen] == [OPEN]
    assert "hook bug" in caplog.text


# --- validation ----------------------------------------------------------------------------------

GOOD: dict[str, Any] = {"break_duration": 1.0, "sampling_duration": 1.0, "minimum_throughput": 2}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("failure_threshold", 0.0),
        ("failure_threshold", -0.5),
        ("failure_threshold", 1.01),
        ("failure_threshold", math.nan),
        ("failure_threshold", "0.5"),
        ("break_duration", 0),
        ("break_duration", -1.0),
        ("break_duration", math.inf),
        ("break_duration", math.nan),
        ("sampling_duration", 0.0),
        ("minimum_throughput", 0),
        ("minimum_throughput", 1.5),
        ("minimum_throughput", True),
        ("windows_count", 0),
        ("half_open_probes", 0),
        ("consecutive_failures", 0),
        ("probe_timeout", 0.0),
        ("max_keys", 0),
    ],
)
def test_bad_options_raise_value_error_naming_the_option(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        DefaultCircuitBreaker[str, None](**{**GOOD, "failure_threshold": 0.5, option: value})


@pytest.mark.parametrize("threshold", [1.0, 1, 0.001])
def test_failure_threshold_may_be_anything_in_the_half_open_interval(threshold: float, clock: Clock) -> None:
    DefaultCircuitBreaker[str, None](**GOOD, failure_threshold=threshold)
    # Accepted and used: one failure in two attempts (a ratio of 0.5) opens the circuit only
    # when the threshold is at most 0.5; a threshold of 1 opens on nothing but all failures.
    breaker = DefaultCircuitBreaker[str, None](**GOOD, failure_threshold=threshold, clock=clock)
    assert breaker.failure_threshold == threshold
    record(breaker, "ok", "fail")
    assert breaker.state == {"a": OPEN if threshold <= 0.5 else CLOSED}
    if threshold > 0.5:
        record(breaker, *["fail"] * 7)
        assert breaker.state == {"a": CLOSED}  # 7 failures in 8: still not all
    record(breaker, "fail", "fail", key="b")
    assert breaker.state["b"] is OPEN


# --- execute(): aio-request's interface ----------------------------------------------------------


def is_even(result: int) -> bool:
    return result % 2 == 0


@pytest.mark.asyncio
async def test_execute_counts_results_and_returns_the_fallback_while_open(clock: Clock) -> None:
    breaker = DefaultCircuitBreaker[str, int](
        break_duration=1.0, sampling_duration=1.0, minimum_throughput=2, failure_threshold=0.5, clock=clock
    )
    calls: list[int] = []

    async def operation() -> int:
        calls.append(1)
        return 1

    for _ in range(2):
        assert await breaker.execute(scope="a", operation=operation, fallback=-1, is_successful=is_even) == 1
    assert await breaker.execute(scope="a", operation=operation, fallback=-1, is_successful=is_even) == -1
    assert len(calls) == 2
    assert breaker.state == {"a": OPEN}


@pytest.mark.asyncio
async def test_execute_counts_an_exception_as_a_failure_and_lets_it_through(clock: Clock) -> None:
    breaker = breaker_on(clock)

    async def broken() -> None:
        raise ConnectionResetError

    for _ in range(2):
        with pytest.raises(ConnectionResetError):
            await breaker.execute(scope="a", operation=broken, fallback=None, is_successful=lambda _: True)
    assert breaker.state == {"a": OPEN}


@pytest.mark.asyncio
async def test_defect_05_execute_hands_an_invalid_requests_probe_back_unused(clock: Clock) -> None:
    breaker = breaker_on(clock)
    record(breaker, "fail", "fail")
    clock.advance(1.0)
    sent: list[str] = []

    async def invalid() -> None:
        raise InvalidRequestError("no value for path parameter 'id'")

    async def healthy() -> None:
        sent.append("probe")

    with pytest.raises(InvalidRequestError):
        await breaker.execute(scope="a", operation=invalid, fallback=None, is_successful=lambda _: True)
    assert breaker.state == {"a": HALF_OPEN}
    await breaker.execute(scope="a", operation=healthy, fallback=None, is_successful=lambda _: True)
    assert sent == ["probe"] and breaker.state == {"a": CLOSED}


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_execute_a_cancelled_attempt_is_nothing_when_closed_and_a_failure_when_probing() -> None:
    breaker = DefaultCircuitBreaker[str, None](
        break_duration=1.0, sampling_duration=10.0, minimum_throughput=2, failure_threshold=0.5
    )

    async def hang() -> None:
        await asyncio.sleep(3600)

    async def fail() -> None:
        raise ConnectionResetError

    async def attempt(operation: Any, timeout: float) -> None:
        async with asyncio.timeout(timeout):  # cancels the operation: what a caller's deadline does
            await breaker.execute(scope="a", operation=operation, fallback=None, is_successful=lambda _: True)

    for _ in range(5):
        with pytest.raises(TimeoutError):
            await attempt(hang, 0.1)
    with pytest.raises(ConnectionResetError):
        await attempt(fail, 1)
    assert breaker.state == {"a": CLOSED}  # one failure; the cancelled attempts are neither
    with pytest.raises(ConnectionResetError):
        await attempt(fail, 1)
    assert breaker.state == {"a": OPEN}

    await asyncio.sleep(1.0)
    with pytest.raises(TimeoutError):
        await attempt(hang, 0.5)  # the probe hangs past its deadline
    assert breaker.state == {"a": OPEN}


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_a_probe_hanging_with_no_deadline_at_all_releases_the_circuit() -> None:
    breaker = DefaultCircuitBreaker[str, None](
        break_duration=1.0, sampling_duration=1.0, minimum_throughput=1, failure_threshold=1.0
    )
    record(breaker, "fail")

    async def hang() -> None:
        await asyncio.sleep(3600)

    await asyncio.sleep(1.0)
    probe = asyncio.create_task(breaker.execute(scope="a", operation=hang, fallback=None, is_successful=bool))
    await asyncio.sleep(0.5)
    assert breaker.state == {"a": HALF_OPEN}
    await asyncio.sleep(0.5)
    assert breaker.state == {"a": OPEN}  # the lease (probe_timeout = break_duration) ran out
    await asyncio.sleep(1.0)
    assert breaker.acquire("a").is_probe
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe


@pytest.mark.asyncio
async def test_noop_never_refuses_and_tracks_nothing() -> None:
    breaker = NoopCircuitBreaker[str, int]()

    async def operation() -> int:
        return 1

    for _ in range(10):
        assert await breaker.execute(scope="a", operation=operation, fallback=-1, is_successful=is_even) == 1
    assert breaker.state == {}


# --- the clock -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_wall_clock_jump_changes_nothing() -> None:
    breaker = DefaultCircuitBreaker[str, None](
        break_duration=60.0, sampling_duration=60.0, minimum_throughput=1, failure_threshold=1.0
    )
    with freeze_time("2030-01-01 12:00:00", real_asyncio=True) as wall:
        record(breaker, "fail")
        wall.tick(3600.0)  # NTP, a VM resumed, daylight saving gone wrong: the break must not end
        assert breaker.state == {"a": OPEN}
        assert refusal(breaker).retry_after > 59
        wall.move_to("2029-12-31")  # and going back must not lengthen it either
        assert refusal(breaker).retry_after <= 60


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_default_clock_is_the_running_loop_s() -> None:
    breaker = DefaultCircuitBreaker[str, None](
        break_duration=5.0, sampling_duration=1.0, minimum_throughput=1, failure_threshold=1.0
    )
    record(breaker, "fail")
    await asyncio.sleep(4.0)  # virtual: takes no real time
    assert refusal(breaker).retry_after == pytest.approx(1.0)
    await asyncio.sleep(1.0)
    assert breaker.acquire("a").is_probe


# --- properties ----------------------------------------------------------------------------------


@given(
    times=st.lists(st.floats(0, 100, allow_nan=False), max_size=40).map(sorted),
    failed=st.lists(st.booleans(), min_size=40, max_size=40),
    duration=st.sampled_from([0.1, 1.0, 2.5, 10.0]),
    buckets=st.integers(1, 12),
    later=st.floats(0, 20),
)
def test_the_window_counts_recent_samples_and_never_old_ones(
    times: list[float], failed: list[bool], duration: float, buckets: int, later: float
) -> None:
    window = SlidingWindow(duration, buckets)
    for at, fail in zip(times, failed, strict=False):
        window.record(at, failed=fail)
    now = (times[-1] if times else 0.0) + later
    successes, failures = window.counts(now)

    samples = list(zip(times, failed, strict=False))
    recent = [fail for at, fail in samples if now - at < duration - duration / buckets]
    possible = [fail for at, fail in samples if now - at <= duration]
    assert successes >= 0 and failures >= 0
    assert recent.count(False) <= successes <= possible.count(False)
    assert recent.count(True) <= failures <= possible.count(True)


VALID_TRANSITIONS = {(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, OPEN), (HALF_OPEN, CLOSED)}


class BreakerInvariants(RuleBasedStateMachine):
    """Random outcomes, cancellations, keys and clock moves against a model of the promises."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.events: list[CircuitStateChanged[str]] = []
        self.seen = 0
        self.permits: list[CircuitPermit[str]] = []
        self.open_until: dict[str, float] = {}  # by key, from the OPEN events
        self.live_probes: dict[str, dict[CircuitPermit[str], float]] = {}  # unreported, this period
        self.probes_granted: dict[str, int] = {}

    @initialize(
        break_duration=st.sampled_from([0.5, 1.0, 2.0]),
        threshold=st.sampled_from([0.1, 0.5, 1.0]),
        minimum=st.integers(1, 4),
        windows=st.integers(1, 5),
        probes=st.integers(1, 3),
        consecutive=st.none() | st.integers(1, 4),
        probe_timeout=st.none() | st.sampled_from([0.3, 1.5, 4.0]),
        max_keys=st.integers(1, 2),
    )
    def create(self, **options: Any) -> None:
        self.breaker = DefaultCircuitBreaker[str, None](
            break_duration=options["break_duration"],
            failure_threshold=options["threshold"],
            minimum_throughput=options["minimum"],
            sampling_duration=1.0,
            windows_count=options["windows"],
            half_open_probes=options["probes"],
            consecutive_failures=options["consecutive"],
            probe_timeout=options["probe_timeout"],
            max_keys=options["max_keys"],
            clock=self.clock,
            hooks=[self.events.append],
        )
        self.lease = options["probe_timeout"] or options["break_duration"]

    def take_events(self) -> None:
        for event in self.events[self.seen :]:
            assert (event.old, event.new) in VALID_TRANSITIONS
            assert event.at <= self.clock.now
            if event.new is OPEN:
                self.open_until[event.key] = event.at + self.breaker.break_duration
            self.live_probes[event.key] = {}  # a new period: earlier probes no longer count
            self.probes_granted[event.key] = 0
        self.seen = len(self.events)

    def forget_untracked(self, key: str) -> None:
        if key not in self.breaker.state:  # new, or forgotten as least recently used
            self.open_until.pop(key, None)
            self.live_probes[key] = {}
            self.probes_granted[key] = 0
        self.take_events()

    @rule(key=st.sampled_from("ab"))
    def acquire(self, key: str) -> None:
        self.forget_untracked(key)
        before = self.breaker.state.get(key, CLOSED)
        self.take_events()
        permit: CircuitPermit[str] | None = None
        try:
            permit = self.breaker.acquire(key)
        except CircuitOpenError as error:
            retry_after = error.retry_after
        self.take_events()
        if permit is None:
            assert before is not CLOSED
            assert 0 < retry_after <= max(self.breaker.break_duration, self.lease)
            return
        assert before is not OPEN
        assert self.clock.now >= self.open_until.get(key, -math.inf)  # never during a break
        assert permit.is_probe == (before is HALF_OPEN)
        if permit.is_probe:
            self.probes_granted[key] += 1
            assert self.probes_granted[key] <= self.breaker.half_open_probes
            self.live_probes[key][permit] = self.clock.now
        self.permits.append(permit)

    @precondition(lambda self: self.permits)
    @rule(data=st.data(), outcome=st.sampled_from(["success", "failure", "cancelled", "unused"]))
    def report(self, data: st.DataObject, outcome: str) -> None:
        permit = self.permits.pop(data.draw(st.integers(0, len(self.permits) - 1)))
        live = self.live_probes.get(permit.key, {}).pop(permit, None)
        if outcome == "unused" and live is not None:
            self.probes_granted[permit.key] -= 1  # a probe of this period hands its slot back
        getattr(permit, outcome)()
        self.take_events()

    @rule(seconds=st.sampled_from([0.0, 0.05, 0.1, 0.3, 0.5, 1.0, 2.0, 5.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @invariant()
    def states_and_keys_are_bounded(self) -> None:
        if not hasattr(self, "breaker"):
            return
        states = self.breaker.state
        self.take_events()
        assert len(states) <= self.breaker.max_keys
        for key, state in states.items():
            assert state in (OPEN, HALF_OPEN, CLOSED)
            if state is OPEN:
                assert self.clock.now < self.open_until[key]
            if state is HALF_OPEN:  # no probe holds it longer than its lease
                assert all(self.clock.now - granted < self.lease for granted in self.live_probes[key].values())
        for circuit in self.breaker._circuits.values():  # internals: the counts themselves
            successes, failures = circuit.window.counts(self.clock.now)
            assert successes >= 0 and failures >= 0 and circuit.consecutive >= 0
            if circuit.state is not CLOSED:
                assert (successes, failures) == (0, 0)


BreakerInvariants.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestBreakerInvariants = BreakerInvariants.TestCase
