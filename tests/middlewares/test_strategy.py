"""SingleAttempt and PerCallStrategy: one attempt, the per-call choice, the shared budget."""

from __future__ import annotations

import pytest

from aio_pipeline import Client, ConnectError, Handler, Pipeline, Request, Response, get, post
from aio_pipeline.extensions import BUDGET, STRATEGY, with_client_defaults, with_event_hook
from aio_pipeline.middlewares.retry import SequentialStrategy, sequential_strategy
from aio_pipeline.middlewares.strategy import PerCallStrategy, SingleAttempt, single_attempt_strategy
from aio_pipeline.policy import (
    AttemptFinished,
    AttemptStarted,
    Event,
    RetryBudget,
    constant_delays,
)
from aio_pipeline.testing import FakeTransport

ENDPOINT = "http://service.local/"


@pytest.mark.asyncio
async def test_single_attempt_sends_once_as_attempt_one() -> None:
    transport = FakeTransport([Response(503)])
    response = await Pipeline(transport, [SingleAttempt()])(get("x", retryable=True))
    assert response.status == 503  # rejected, but there is no second attempt
    [sent] = transport.sent
    assert (sent.request.attempt, sent.request.attempt_kind) == (1, "first")


@pytest.mark.asyncio
async def test_single_attempt_raises_the_error_itself() -> None:
    error = ConnectError("refused")
    with pytest.raises(ConnectError) as raised:
        await Pipeline(FakeTransport([error]), [single_attempt_strategy()])(get("x"))
    assert raised.value is error


@pytest.mark.asyncio
async def test_single_attempt_counts_the_call_in_the_budget_and_reports_events() -> None:
    budget, seen = RetryBudget(), list[Event]()
    strategy = SingleAttempt(budget=budget, event_hooks=[seen.append])
    await Pipeline(FakeTransport([Response(200)]), [strategy])(get("x"))
    assert budget.first_attempts == 1 and budget.extra_attempts == 0
    assert [type(event) for event in seen] == [AttemptStarted, AttemptFinished]


@pytest.mark.asyncio
async def test_per_call_strategy_uses_its_default_without_a_choice() -> None:
    transport = FakeTransport([Response(503), Response(200)])
    pipeline = Pipeline(transport, [PerCallStrategy(SequentialStrategy(delays_provider=constant_delays()))])
    assert (await pipeline(get("x"))).status == 200
    assert len(transport.sent) == 2


@pytest.mark.asyncio
async def test_the_default_default_is_a_single_attempt() -> None:
    transport = FakeTransport([Response(503)])
    assert (await Pipeline(transport, [PerCallStrategy()])(get("x"))).status == 503
    assert len(transport.sent) == 1


@pytest.mark.asyncio
async def test_a_strategy_chosen_per_call_applies_to_any_method() -> None:
    transport = FakeTransport([Response(503), Response(200)])
    client = Client(ENDPOINT, Pipeline(transport, [PerCallStrategy()]))
    strategy = sequential_strategy(attempts_count=2, delays_provider=constant_delays())
    async with client.request(post("orders", b"{}"), strategy=strategy) as response:
        assert response.status == 200
    assert [sent.request.attempt_kind for sent in transport.sent] == ["first", "retry"]
    assert all(sent.request.retryable for sent in transport.sent)


@pytest.mark.asyncio
async def test_without_a_per_call_choice_a_post_is_not_retried() -> None:
    transport = FakeTransport([Response(503)])
    default = SequentialStrategy(delays_provider=constant_delays())
    client = Client(ENDPOINT, Pipeline(transport, [PerCallStrategy(default)]))
    async with client.request(post("orders", b"{}")) as response:
        assert response.status == 503
    assert len(transport.sent) == 1


def test_client_request_puts_the_strategy_on_the_request() -> None:
    strategy = single_attempt_strategy()
    client = Client(ENDPOINT, Pipeline(FakeTransport(), [PerCallStrategy()]))
    context = client.request(get("x"), strategy=strategy)
    assert STRATEGY.get(context._request) is strategy
    assert STRATEGY.get(client.request(get("x"))._request) is None


@pytest.mark.asyncio
async def test_the_selector_shares_its_budget_with_a_strategy_created_per_call() -> None:
    budget = RetryBudget(ratio=0.0, min_per_second=0.1, window_seconds=10.0)  # exactly one extra attempt
    transport = FakeTransport([Response(503), Response(503), Response(503), Response(503)])
    client = Client(ENDPOINT, Pipeline(transport, [PerCallStrategy(budget=budget)]))
    for _ in range(2):  # a fresh strategy object each call, as callers write it
        strategy = sequential_strategy(attempts_count=2, delays_provider=constant_delays())
        async with client.request(get("x"), strategy=strategy) as response:
            assert response.status == 503
    assert len(transport.sent) == 3  # 2 + 1: the second call found the shared budget spent
    assert (budget.first_attempts, budget.extra_attempts) == (2, 1)


@pytest.mark.asyncio
async def test_an_outer_budget_on_the_request_is_kept() -> None:
    outer = RetryBudget()
    carried: list[object] = []

    async def spy(request: Request, call_next: Handler[Request, Response], /) -> Response:
        carried.append(BUDGET.get(request))
        return await call_next(request)

    pipeline = Pipeline(FakeTransport([Response(200)]), [PerCallStrategy(spy)])
    await pipeline(BUDGET.on(get("x"), outer))
    assert carried == [outer]


@pytest.mark.asyncio
async def test_a_strategy_created_per_call_reports_to_the_hooks_on_the_request() -> None:
    seen: list[Event] = []
    transport = FakeTransport([Response(503), Response(200)])
    client = Client(ENDPOINT, Pipeline(transport, [PerCallStrategy()]))
    strategy = sequential_strategy(attempts_count=2, delays_provider=constant_delays())
    async with client.request(with_event_hook(get("x"), seen.append), strategy=strategy):
        pass
    finished = [event for event in seen if isinstance(event, AttemptFinished)]
    assert [event.status for event in finished] == [503, 200]


def test_a_default_that_is_not_a_middleware_is_refused() -> None:
    with pytest.raises(ValueError, match="default"):
        PerCallStrategy(default="sequential")  # type: ignore[arg-type]


def test_a_strategy_for_a_pipeline_that_cannot_run_it_is_refused_not_ignored() -> None:
    transport = FakeTransport([Response(503), Response(200)])
    client = Client(ENDPOINT, Pipeline(transport, [SingleAttempt()]))
    with pytest.raises(ValueError, match="PerCallStrategy") as refused:
        client.request(get("x"), strategy=sequential_strategy(attempts_count=2))
    assert "SingleAttempt" in str(refused.value)  # the pipeline it looked at
    assert transport.sent == []


def test_client_defaults_fill_only_what_a_strategy_lacks_and_add_hooks_after_its_own() -> None:
    own_budget, client_budget = RetryBudget(), RetryBudget()
    own_hook, client_hook = (lambda event: None), (lambda event: None)
    strategy = SequentialStrategy(budget=own_budget, event_hooks=[own_hook])
    bound = with_client_defaults(
        strategy, budget=client_budget, classifier=None, event_hooks=[client_hook], low_timeout_threshold=0.01
    )
    assert bound.budget is own_budget and bound.low_timeout_threshold == 0.01
    assert bound.event_hooks == (own_hook, client_hook)
    assert strategy.low_timeout_threshold is None  # a copy: the original is the user's
    single = with_client_defaults(SingleAttempt(), budget=client_budget, classifier=None, event_hooks=())
    assert single.budget is client_budget  # fields SingleAttempt lacks (classifier, threshold) are skipped
