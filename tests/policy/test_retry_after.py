"""Retry-After: both forms, bad values, and the wait plan under a deadline and a maximum."""

from __future__ import annotations

import math

import pytest
from freezegun import freeze_time
from hypothesis import given
from hypothesis import strategies as st

from aio_pipeline import Response, TransportError
from aio_pipeline.policy import parse_retry_after, plan_wait, retry_after_of
from aio_pipeline.propagation import LOW_TIMEOUT_THRESHOLD


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("120", 120.0), ("  7 ", 7.0), ("1.5", 1.5), ("00030", 30.0)],
)
def test_delta_seconds(value: str, seconds: float) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "-1", "+5", "1e3", "inf", "nan", "0x10", "soon", "5 seconds", "9" * 400, "Mon, 99 Foo 2015"],
)
def test_bad_values_give_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


@freeze_time("2015-10-21 07:27:00", tz_offset=0)
def test_http_date_is_measured_against_the_wall_clock() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 60.0
    assert parse_retry_after("Wednesday, 21-Oct-15 07:28:30 GMT") == 90.0  # the obsolete RFC 850 form
    assert parse_retry_after("Wed, 21 Oct 2015 08:28:00 +0100") == 60.0  # a zone is honoured
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00") == 60.0  # no zone: GMT


@freeze_time("2015-10-21 07:27:00")
def test_http_date_in_the_past_means_now() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT") == 0.0


def test_http_date_against_an_explicit_now() -> None:
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60.0


@given(st.text(max_size=60))
def test_never_raises(value: str) -> None:
    seconds = parse_retry_after(value)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


def test_only_429_and_503_carry_a_retry_after() -> None:
    assert retry_after_of(Response(503, {"Retry-After": "2"})) == 2.0
    assert retry_after_of(Response(429, {"retry-after": "3"})) == 3.0
    assert retry_after_of(Response(500, {"Retry-After": "2"})) is None
    assert retry_after_of(Response(503)) is None
    assert retry_after_of(TransportError("reset")) is None


def test_plan_without_retry_after_is_the_backoff() -> None:
    plan = plan_wait(0.2, None, max_retry_after=30, remaining=None)
    assert (plan.delay, plan.retry_after) == (0.2, None)


def test_plan_waits_the_longer_of_backoff_and_retry_after() -> None:
    assert plan_wait(0.2, 1.0, max_retry_after=30, remaining=5).delay == 1.0
    assert plan_wait(2.0, 1.0, max_retry_after=30, remaining=5).delay == 2.0


def test_plan_gives_up_when_the_server_asks_beyond_the_maximum() -> None:
    plan = plan_wait(0.1, 60.0, max_retry_after=30, remaining=None)
    assert plan.delay is None and plan.retry_after == 60.0 and plan.limit == 30


def test_plan_gives_up_when_the_wait_would_outlast_the_deadline() -> None:
    plan = plan_wait(0.1, 2.0, max_retry_after=30, remaining=1.0)
    assert plan.delay is None and plan.limit == pytest.approx(1.0 - LOW_TIMEOUT_THRESHOLD)
    assert plan_wait(0.5, None, max_retry_after=30, remaining=0.5).delay is None  # nothing would be left
    assert plan_wait(0.5, None, max_retry_after=30, remaining=0.5 + 2 * LOW_TIMEOUT_THRESHOLD).delay == 0.5


@pytest.mark.parametrize("bad", [-1.0, math.nan])
def test_plan_treats_a_negative_or_nan_backoff_as_none(bad: float) -> None:
    assert plan_wait(bad, None, max_retry_after=30, remaining=None).delay == 0.0


def test_plan_refuses_an_infinite_wait() -> None:
    assert plan_wait(math.inf, None, max_retry_after=30, remaining=None).delay is None
