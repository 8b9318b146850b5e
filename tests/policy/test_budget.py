"""RetryBudget: ratio plus reserve, the sliding window on the loop clock, validation, sharing."""

from __future__ import annotations

import asyncio
import math

import pytest

from aio_pipeline import get
from aio_pipeline.extensions import BUDGET, budget_for
from aio_pipeline.policy import RetryBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def spend_all(budget: RetryBudget) -> int:
    taken = 0
    while budget.try_withdraw():
        taken += 1
    return taken


def test_defaults_are_twenty_percent_plus_ten_per_second_over_ten_seconds() -> None:
    budget = RetryBudget(clock=Clock())
    assert (budget.ratio, budget.min_per_second, budget.window_seconds) == (0.2, 10.0, 10.0)
    assert budget.available == 100.0  # the reserve: 10 per second over the window


def test_extra_attempts_are_a_share_of_first_attempts_plus_the_reserve() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=0.5, window_seconds=10.0, clock=Clock())
    for _ in range(100):
        budget.deposit()
    assert budget.first_attempts == 100
    assert spend_all(budget) == 25  # 20% of 100, plus 0.5/s * 10 s
    assert budget.extra_attempts == 25
    assert not budget.try_withdraw() and budget.extra_attempts == 25  # a refusal takes nothing


def test_without_reserve_a_quiet_client_earns_its_retries() -> None:
    budget = RetryBudget(ratio=0.2, min_per_second=0.0, clock=Clock())
    assert not budget.try_withdraw()
    for _ in range(5):
        budget.deposit()
    assert budget.try_withdraw() and not budget.try_withdraw()


def test_the_window_slides() -> None:
    clock = Clock()
    budget = RetryBudget(ratio=0.5, min_per_second=0.0, window_seconds=10.0, buckets=10, clock=clock)
    for _ in range(10):
        budget.deposit()  # at t=0
    assert spend_all(budget) == 5
    clock.now = 5.0
    for _ in range(10):
        budget.deposit()  # at t=5
    assert spend_all(budget) == 5  # 50% of 20, minus the 5 already taken
    clock.now = 10.5  # the t=0 bucket has left the window, deposits and withdrawals alike
    assert (budget.first_attempts, budget.extra_attempts) == (10, 5)
    assert budget.available == 0
    clock.now = 15.5
    assert (budget.first_attempts, budget.extra_attempts, budget.available) == (0, 0, 0)


def test_a_long_pause_forgets_everything() -> None:
    clock = Clock()
    budget = RetryBudget(min_per_second=1.0, clock=clock)
    for _ in range(50):
        budget.deposit()
    spend_all(budget)
    clock.now = 1e6
    assert budget.available == 10.0


@pytest.mark.asyncio
@pytest.mark.looptime
async def test_the_default_clock_is_the_loop_clock() -> None:
    budget = RetryBudget(ratio=1.0, min_per_second=0.0, window_seconds=10.0)
    budget.deposit()
    assert budget.try_withdraw() and not budget.try_withdraw()
    await asyncio.sleep(11)
    budget.deposit()
    assert budget.try_withdraw()


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"ratio": -0.1}, "ratio"),
        ({"ratio": math.nan}, "ratio"),
        ({"min_per_second": -1.0}, "min_per_second"),
        ({"min_per_second": math.inf}, "min_per_second"),
        ({"window_seconds": 0.0}, "window_seconds"),
        ({"buckets": 0}, "buckets"),
    ],
)
def test_bad_options_raise_value_error_naming_the_parameter(options: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        RetryBudget(**options)  # type: ignore[arg-type]


def test_a_strategys_own_budget_wins_over_the_one_the_request_carries() -> None:
    carried, own = RetryBudget(), RetryBudget()
    request = BUDGET.on(get("x"), carried)
    assert budget_for(own, request) is own
    assert budget_for(None, request) is carried
    assert budget_for(None, get("x")) is None
    assert budget_for(None, get("x").with_extension(BUDGET.name, "not a budget")) is None


def test_budgets_compare_by_identity() -> None:
    assert RetryBudget() != RetryBudget()
    assert "ratio=0.2" in repr(RetryBudget())
