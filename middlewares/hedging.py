"""``ParallelStrategy``: hedged requests. The first *accepted* response wins; the rest are cancelled.

Attempt 1 starts at once. Attempt k starts ``delays_provider(k - 1)`` seconds after attempt k-1
started, or at once when an earlier attempt is rejected (a fast error never wins; an error the
classifier calls final stops new attempts, but running ones may still win), unless that
rejection carries ``Retry-After``: then no attempt starts before it (nor at all when it asks for
more than the time left). Each extra attempt spends from the retry budget. All attempts run as
tasks of one ``TaskGroup`` inside the call (they copy the caller's contextvars); when the call
returns or is cancelled, every other attempt has been cancelled and awaited and every response
but the returned one closed, so nothing outlives it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from aio_pipeline._budget import RetryBudget, budget_for
from aio_pipeline._checks import check_kind, check_strategy_options
from aio_pipeline._classify import Outcome, ResponseClassifier, classifier_for, is_repeatable
from aio_pipeline._deadline import LOW_TIMEOUT_THRESHOLD
from aio_pipeline._delays import (
    DelaysProvider,
    RequestAttemptDelaysProvider,
    delay_for,
    linear_backoff_delays,
    observe_latency,
)
from aio_pipeline._errors import DeadlineExceededError
from aio_pipeline._events import (
    BudgetExhausted,
    Emitter,
    EventHook,
    HedgeStarted,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryScheduled,
    run_attempt,
)
from aio_pipeline._pipeline import Handler
from aio_pipeline._priority import Priority
from aio_pipeline._request import Request
from aio_pipeline._response import Response
from aio_pipeline._retry_after import plan_wait, retry_after_of

__all__ = ["ParallelStrategy", "parallel_strategy"]

# A timer may wake a hair before its time (float rounding); an attempt that close is due.
_EARLY = 1e-6


@dataclass(frozen=True, slots=True)
class ParallelStrategy:
    """Up to ``attempts_count`` (3) overlapping attempts of one call.

    ``delays_provider`` (default ``linear_backoff_delays()``; a
    ``PercentileBasedRequestAttemptDelaysProvider`` hedges at observed latency) spaces them.
    Only idempotent requests are hedged; others get one attempt, repeated only after a failure
    that proves it never left the machine. Extra attempts spend from ``budget`` (its own, else
    the request's) and from ``hedge_budget`` if given (a cap on this strategy's extra load, e.g.
    ``RetryBudget(ratio=0.05)``); when either is spent, no more start. ``hedge_priority`` (e.g.
    ``Priority.LOW``) is sent with hedges. ``classifier`` judges outcomes (default: the client's,
    carried by the request, else ``DefaultResponseClassifier()``). ``Retry-After`` is honoured up to ``max_retry_after``
    (30 s). No attempt starts with less than the low-timeout threshold left of the deadline.
    """

    attempts_count: int = 3
    delays_provider: DelaysProvider | RequestAttemptDelaysProvider = field(default_factory=linear_backoff_delays)
    classifier: ResponseClassifier | None = None
    budget: RetryBudget | None = None
    hedge_budget: RetryBudget | None = None
    hedge_priority: Priority | None = None
    max_retry_after: float = 30.0
    event_hooks: Sequence[EventHook] = ()

    def __post_init__(self) -> None:
        check_strategy_options(
            self.attempts_count,
            self.delays_provider,
            self.max_retry_after,
            classifier=self.classifier,
            budgets={"budget": self.budget, "hedge_budget": self.hedge_budget},
        )
        check_kind("hedge_priority", self.hedge_priority, Priority)
        object.__setattr__(self, "event_hooks", tuple(self.event_hooks))

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        return await _Race(self, request, call_next).run()


def parallel_strategy(
    *, attempts_count: int = 3, delays_provider: DelaysProvider | RequestAttemptDelaysProvider | None = None
) -> ParallelStrategy:
    """aio-request's ``parallel_strategy``; ``delays_provider`` defaults to ``linear_backoff_delays()``."""
    return ParallelStrategy(
        attempts_count=attempts_count,
        delays_provider=delays_provider if delays_provider is not None else linear_backoff_delays(),
    )


class _Race:
    """The state of one hedged call; it lives exactly as long as the call."""

    __slots__ = (
        "_budgets",
        "_call_next",
        "_classifier",
        "_events",
        "_group",
        "_last",
        "_loop",
        "_next_start",
        "_not_before",
        "_request",
        "_started_at",
        "_stopped",
        "_strategy",
        "_tasks",
    )

    def __init__(self, strategy: ParallelStrategy, request: Request, call_next: Handler[Request, Response]) -> None:
        self._strategy = strategy
        self._request = request
        self._call_next = call_next
        self._loop = asyncio.get_running_loop()
        self._events = Emitter(strategy.event_hooks, request)
        self._classifier = classifier_for(strategy.classifier, request)
        own = budget_for(strategy.budget, request)
        self._budgets = [budget for budget in (own, strategy.hedge_budget) if budget is not None]
        self._group: asyncio.TaskGroup | None = None
        self._tasks: list[asyncio.Task[Outcome]] = []
        self._started_at: list[float] = []
        self._next_start = math.inf  # loop time at which the next attempt is due
        self._not_before = -math.inf  # the server's Retry-After pushback
        self._stopped = False
        self._last: Outcome | None = None  # the latest rejected outcome, returned if none wins

    async def run(self) -> Response:
        for budget in self._budgets:
            budget.deposit()
        returned: Outcome | None = None
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._start()
                returned = await self._race()
                if returned.accepted:
                    self._observe_losers(returned)
                for task in self._tasks:
                    task.cancel()  # the group awaits them before the call returns
        finally:
            # Also on cancellation: a loser may have finished with a response before its cancel.
            for task in self._tasks:
                if task.done() and not task.cancelled() and task.exception() is None:
                    outcome = task.result()
                    if outcome is not returned:
                        await outcome.discard()
        assert returned is not None
        return returned.unwrap()

    async def _race(self) -> Outcome:
        while True:
            now = self._loop.time()
            can_start = self._can_start()
            if can_start and now >= self._next_start - _EARLY:
                self._start()
                continue
            running = [task for task in self._tasks if not task.done()]
            timeout = self._next_start - now if can_start else None
            if not running:
                if timeout is None:
                    assert self._last is not None  # attempt 1 ran, and was rejected
                    return self._last
                await asyncio.sleep(timeout)  # only when waiting out a Retry-After
                continue
            done, _ = await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finished = sorted((task.result() for task in done), key=lambda outcome: outcome.request.attempt)
            for outcome in finished:
                if outcome.accepted and isinstance(outcome.result, Response):
                    return outcome
            for outcome in finished:
                await self._settle(outcome)

    def _can_start(self) -> bool:
        if self._stopped or len(self._tasks) >= self._strategy.attempts_count or self._next_start == math.inf:
            return False
        deadline = self._request.deadline
        return deadline is None or self._next_start <= deadline.deadline_at - LOW_TIMEOUT_THRESHOLD

    def _start(self) -> None:
        attempt = len(self._tasks) + 1
        running = any(not task.done() for task in self._tasks)
        kind = "first" if attempt == 1 else "hedge" if running else "retry"
        self._next_start = math.inf
        request = self._request
        if attempt > 1:
            if request.deadline is not None and request.deadline.timeout < LOW_TIMEOUT_THRESHOLD:
                self._stopped = True
                return
            if not self._withdraw(attempt, kind):
                return
        priority = self._strategy.hedge_priority if kind == "hedge" else None
        attempt_request = request.replace(
            attempt=attempt, attempt_kind=kind, priority=priority if priority is not None else request.priority
        )
        now = self._loop.time()
        if kind == "hedge" and self._events:
            self._events.emit(HedgeStarted(attempt_request, now - self._started_at[-1]))
        self._started_at.append(now)
        assert self._group is not None
        coroutine = run_attempt(self._call_next, attempt_request, self._classifier, self._events)
        self._tasks.append(self._group.create_task(coroutine, name=f"aio_pipeline attempt {attempt}"))
        if request.is_idempotent and attempt < self._strategy.attempts_count:
            delay = delay_for(self._strategy.delays_provider, request, attempt)
            self._next_start = max(now + (delay if delay > 0 else 0.0), self._not_before)

    def _withdraw(self, attempt: int, kind: str) -> bool:
        if all(budget.available >= 1 for budget in self._budgets):
            for budget in self._budgets:
                budget.try_withdraw()
            return True
        self._stopped = True
        if self._events:
            self._events.emit(BudgetExhausted(self._request.replace(attempt=attempt, attempt_kind=kind), attempt, kind))
        return False

    async def _settle(self, outcome: Outcome) -> None:
        """Take in an outcome that does not win: a rejection, or a final error (an open circuit,
        say), which stops new attempts but lets running ones finish, as they may still win."""
        if isinstance(outcome.result, DeadlineExceededError):
            observe_latency(self._strategy.delays_provider, self._request, outcome.elapsed)  # at least this slow
        if self._last is not None:
            await self._last.discard()  # only the latest outcome may be returned
        self._last = outcome
        if self._stopped or len(self._tasks) >= self._strategy.attempts_count:
            return
        if outcome.accepted or not is_repeatable(self._request, outcome.result):
            self._stopped = True
            return
        deadline = self._request.deadline
        plan = plan_wait(
            0.0,  # a rejection is news: try again at once, unless the server pushed back
            retry_after_of(outcome.result),
            max_retry_after=self._strategy.max_retry_after,
            remaining=None if deadline is None else deadline.timeout,
        )
        if plan.delay is None:
            self._stopped = True
            if plan.retry_after is not None and self._events:
                self._events.emit(RetryAfterGaveUp(outcome.request, plan.retry_after, plan.limit))
            return
        now = self._loop.time()
        if plan.retry_after is not None:
            self._not_before = max(self._not_before, now + plan.delay)
            if self._events:
                self._events.emit(RetryAfterHonoured(outcome.request, plan.retry_after, plan.delay))
        self._next_start = max(now + plan.delay, self._not_before)
        if self._events:
            self._events.emit(RetryScheduled(outcome.request, len(self._tasks) + 1, self._next_start - now))

    def _observe_losers(self, winner: Outcome) -> None:
        """Feed the latency-learning provider: the winner's time, and each attempt still running
        that has already taken longer than the winner, as "at least this slow"."""
        provider = self._strategy.delays_provider
        if not isinstance(provider, RequestAttemptDelaysProvider):
            return
        provider.observe(self._request, winner.elapsed)
        now = self._loop.time()
        for task, started in zip(self._tasks, self._started_at, strict=True):
            if not task.done() and now - started >= winner.elapsed:
                provider.observe(self._request, now - started)
