"""Deadline: construction, remaining time, ordering, division and the header codec."""

from __future__ import annotations

import asyncio
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aio_pipeline import Deadline
from aio_pipeline.propagation import MAX_WIRE_TIMEOUT, format_timeout, parse_timeout


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_timeout_counts_down_on_the_loop_clock() -> None:
    deadline = Deadline.from_timeout(10)
    assert deadline.timeout == pytest.approx(10)
    await asyncio.sleep(4)
    assert deadline.timeout == pytest.approx(6)
    assert not deadline.expired
    await asyncio.sleep(6)
    assert deadline.expired
    await asyncio.sleep(1)
    assert deadline.timeout == 0.0  # never negative


@pytest.mark.asyncio
async def test_zero_timeout_is_already_expired() -> None:
    deadline = Deadline.from_timeout(0)
    assert deadline.expired
    assert deadline.timeout == 0.0


@pytest.mark.parametrize("bad", [-0.001, -1.0, math.nan, math.inf, -math.inf])
def test_from_timeout_rejects_negative_nan_and_infinite(bad: float) -> None:
    with pytest.raises(ValueError, match="timeout"):
        Deadline.from_timeout(bad)


def test_huge_timeout_is_accepted_and_far_away() -> None:
    deadline = Deadline.from_timeout(1e12)
    assert deadline.timeout > 1e11
    assert not deadline.expired


def test_nan_deadline_at_is_rejected() -> None:
    with pytest.raises(ValueError, match="deadline_at"):
        Deadline(math.nan)


@pytest.mark.asyncio
async def test_earlier_deadline_is_min() -> None:
    short, long = Deadline.from_timeout(1), Deadline.from_timeout(30)
    assert min(short, long) is short
    assert min(long, short) is short
    assert short < long


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_division_shares_the_time_left() -> None:
    deadline = Deadline.from_timeout(9)
    await asyncio.sleep(3)
    assert (deadline / 3).timeout == pytest.approx(2)
    assert (deadline / 1).deadline_at == pytest.approx(deadline.deadline_at)


@pytest.mark.parametrize("bad", [0, -1, math.nan, math.inf])
def test_division_rejects_bad_divisors(bad: float) -> None:
    with pytest.raises(ValueError, match="divisor"):
        Deadline.from_timeout(1) / bad


def test_works_outside_an_event_loop() -> None:
    assert 4 < Deadline.from_timeout(5).timeout <= 5


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("4.9873", 4.9873),
        ("  2 ", 2.0),
        ("86400", 86400.0),
        (".5", 0.5),
        ("7.", 7.0),
        ("\t3\t", 3.0),
        ("5e-05", 5e-05),  # aio-request writes Python's float repr: a small value has an exponent
        ("4.999973525000087", 4.999973525000087),
        ("1e3", 1000.0),
        ("0", 0.0),
        ("-3", 0.0),
        ("", None),
        ("   ", None),
        ("nan", None),
        ("inf", None),
        ("-inf", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_parse_timeout_rules(header: str | None, expected: float | None) -> None:
    assert parse_timeout(header) == expected


@given(st.text())
def test_parse_timeout_never_raises_and_gives_finite_non_negative(value: str) -> None:
    seconds = parse_timeout(value)
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


@pytest.mark.parametrize(
    "header",
    [
        "1e300",  # well-formed, but far above the ceiling
        "1e5",  # a little above it
        "1_0",  # float() allows digit grouping
        "\u0661\u0662",  # Arabic-Indic digits, which float() reads as 12
        "\uff15",  # a fullwidth 5
        "+5",
        "5 5",
        "0x10",
        "1" + "0" * 300,  # a plain decimal far above the ceiling
        "86400.0001",  # just above the ceiling
        "9" * 40,  # longer than any value a client writes
        "\u00a05\u00a0",  # a no-break space is not HTTP whitespace
    ],
)
def test_defect_08_timeout_outside_the_wire_grammar_or_above_the_ceiling_carries_no_deadline(header: str) -> None:
    assert parse_timeout(header) is None


def test_defect_08_the_ceiling_is_one_day() -> None:
    assert MAX_WIRE_TIMEOUT == 86_400.0
    assert parse_timeout("86400") == MAX_WIRE_TIMEOUT


@given(st.from_regex(r"\A[ \t]{0,3}-?[0-9]{1,5}(\.[0-9]{0,4})?([eE][-+]?[0-9]{1,3})?[ \t]{0,3}\Z"))
def test_defect_08_every_value_of_the_grammar_is_read_as_python_reads_it(value: str) -> None:
    expected = float(value.strip(" \t"))
    parsed = parse_timeout(value)
    if expected > MAX_WIRE_TIMEOUT:
        assert parsed is None
    else:
        assert parsed == max(expected, 0.0)


@given(st.floats(min_value=0, max_value=MAX_WIRE_TIMEOUT, allow_nan=False))
def test_defect_08_what_aio_request_writes_is_read_back_exactly(seconds: float) -> None:
    assert parse_timeout(str(seconds)) == seconds  # aio-request's header: str() of the float


@given(st.floats(min_value=0, max_value=MAX_WIRE_TIMEOUT, allow_nan=False))
def test_format_then_parse_round_trips_to_a_tenth_of_a_millisecond(seconds: float) -> None:
    parsed = parse_timeout(format_timeout(seconds))
    assert parsed is not None
    assert abs(parsed - seconds) <= 0.00005 + seconds * 1e-15


def test_format_timeout_never_writes_a_negative() -> None:
    assert format_timeout(-2) == "0.0000"
