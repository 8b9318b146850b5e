"""``SequentialStrategy``: attempt, classify, wait, attempt again; deadline-aware and budgeted.

The *policy* (is the outcome final, may this request be sent again, how long to wait) lives in
the core (``_classify``, ``_delays``, ``_retry_after``, ``_budget``); this module is the
*mechanics*: the loop, closing what it will not return, and sleeping.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from aio_pipeline._budget import RetryBudget, budget_for
from aio_pipeline._checks import check_strategy_options
from aio_pipeline._classify import Outcome, ResponseClassifier, classifier_for, is_repeatable
from aio_pipeline._deadline import Deadline
from aio_pipeline._delays import DelaysProvider, RequestAttemptDelaysProvider, delay_for, linear_backoff_delays
from aio_pipeline._events import (
    BudgetExhausted,
    Emitter,
    EventHook,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryScheduled,
    run_attempt,
)
from aio_pipeline._pipeline import Handler
from aio_pipeline._request import Request
from aio_pipeline._response import Response
from aio_pipeline._retry_after import WaitPlan, plan_wait, retry_after_of

__all__ = [
    "DeadlineProvider",
    "SequentialStrategy",
    "pass_deadline_through",
    "retry_until_deadline_expired",
    "sequential_strategy",
    "split_deadline_between_attempts",
]

#: ``(call deadline, attempt index from 0, attempts count) -> the attempt's deadline``.
DeadlineProvider: TypeAlias = Callable[[Deadline, int, int], Deadline]


def split_deadline_between_attempts(*, split_factor: int | None = None) -> DeadlineProvider:
    """Give each attempt an equal share of the time left among the attempts left, as aio-request:
    with 9 s and 3 attempts, the first gets 3 s; if it fails after 1 s, the second gets 4 s, the
    last everything left. ``split_factor`` (>= 2) caps the number of shares."""
    if split_factor is not None and split_factor < 2:
        raise ValueError(f"split_factor must be >= 2, got {split_factor!r}")

    def split(deadline: Deadline, attempt: int, attempts_count: int) -> Deadline:
        shares = (attempts_count if split_factor is None else min(split_factor, attempts_count)) - attempt
        return deadline / shares if shares > 1 and not deadline.expired else deadline

    return split


def pass_deadline_through() -> DeadlineProvider:
    """Give every attempt all the time left of the call (the default)."""
    return lambda deadline, attempt, attempts_count: deadline


@dataclass(frozen=True, slots=True)
class SequentialStrategy:
    """Up to ``attempts_count`` (3) attempts, one after the other.

    An attempt the ``classifier`` (default: the client's, carried by the request, else
    ``DefaultResponseClassifier()``) rejects is closed, then the strategy waits
    ``delays_provider(attempt)`` seconds (default: ``linear_backoff_delays()``), or longer if a
    429/503 asks so with ``Retry-After`` (honoured up to ``max_retry_after``, 30 s), and tries
    again. It stops at once, returning the last response or re-raising the last exception, when:
    the outcome is accepted; the count is reached; the request is not idempotent (unless the
    failure proves it never left the machine); the wait would leave less than the low-timeout
    threshold of the deadline; or the retry ``budget`` (its own, else the request's) is spent.
    Each attempt's deadline comes from ``deadline_provider`` (default: the whole remainder;
    ``split_deadline_between_attempts()`` to share it) and is never later than the call's. A
    learning ``delays_provider`` (a ``RequestAttemptDelaysProvider``) is told each attempt's
    latency as ``latency_sample`` rules: answers, and attempts cut by their deadline, whoever
    cancelled them, as "at least this slow"; never instant refusals.
    """

    attempts_count: int = 3
    delays_provider: DelaysProvider | RequestAttemptDelaysProvider = field(default_factory=linear_backoff_delays)
    deadline_provider: DeadlineProvider = field(default_factory=pass_deadline_through)
    classifier: ResponseClassifier | None = None
    budget: RetryBudget | None = None
    max_retry_after: float = 30.0
    event_hooks: Sequence[EventHook] = ()

    def __post_init__(self) -> None:
        check_strategy_options(
            self.attempts_count,
            self.delays_provider,
            self.max_retry_after,
            classifier=self.classifier,
            budgets={"budget": self.budget},
        )
        if not callable(self.deadline_provider):
            raise ValueError(f"deadline_provider must be callable, got {self.deadline_provider!r}")
        object.__setattr__(self, "event_hooks", tuple(self.event_hooks))

    def with_defaults(
        self, *, budget: RetryBudget | None, classifier: ResponseClassifier | None, event_hooks: Sequence[EventHook]
    ) -> SequentialStrategy:
        """A copy that uses ``budget`` and ``classifier`` unless it has its own, and reports to
        ``event_hooks`` too: how ``PerCallStrategy`` gives it the client's, once."""
        return dataclasses.replace(
            self,
            budget=self.budget if self.budget is not None else budget,
            classifier=self.classifier if self.classifier is not None else classifier,
            event_hooks=(*self.event_hooks, *event_hooks),
        )

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        budget = budget_for(self.budget, request)
        events = Emitter(self.event_hooks, request)
        classifier = classifier_for(self.classifier, request)
        # A learning delays provider is told what each attempt says of the endpoint's latency.
        latency = self.delays_provider if isinstance(self.delays_provider, RequestAttemptDelaysProvider) else None
        if budget is not None:
            budget.deposit()
        attempt = 1
        while True:
            outcome = await run_attempt(call_next, self._attempt_request(request, attempt), classifier, events, latency)
            plan = self._plan(request, outcome, events)
            if plan is None or plan.delay is None:
                return outcome.unwrap()
            if budget is not None and not budget.try_withdraw():
                if events:
                    events.emit(BudgetExhausted(outcome.request, attempt + 1, "retry"))
                return outcome.unwrap()
            await outcome.discard()  # before sleeping: a rejected response must not hold a connection
            if events:
                if plan.retry_after is not None:
                    events.emit(RetryAfterHonoured(outcome.request, plan.retry_after, plan.delay))
                events.emit(RetryScheduled(outcome.request, attempt + 1, plan.delay))
            await asyncio.sleep(plan.delay)
            attempt += 1

    def _attempt_request(self, request: Request, attempt: int) -> Request:
        deadline = request.deadline
        # Only a request that may be repeated shares its time out; one that gets a single
        # attempt keeps all of it.
        if deadline is not None and request.is_idempotent:
            deadline = min(self.deadline_provider(deadline, attempt - 1, self.attempts_count), deadline)
        return request.replace(attempt=attempt, attempt_kind="first" if attempt == 1 else "retry", deadline=deadline)

    def _plan(self, request: Request, outcome: Outcome, events: Emitter) -> WaitPlan | None:
        """How long to wait before the next attempt; ``None`` or no delay: do not try again."""
        attempt = outcome.request.attempt
        if outcome.accepted or attempt >= self.attempts_count or not is_repeatable(request, outcome.result):
            return None
        plan = plan_wait(
            delay_for(self.delays_provider, request, attempt),
            retry_after_of(outcome.result),
            max_retry_after=self.max_retry_after,
            remaining=None if request.deadline is None else request.deadline.timeout,
        )
        if plan.delay is None and plan.retry_after is not None and events:
            events.emit(RetryAfterGaveUp(outcome.request, plan.retry_after, plan.limit))
        return plan


def sequential_strategy(
    *,
    attempts_count: int = 3,
    delays_provider: DelaysProvider | RequestAttemptDelaysProvider | None = None,
    deadline_provider: DeadlineProvider | None = None,
) -> SequentialStrategy:
    """aio-request's ``sequential_strategy``; ``delays_provider`` defaults to
    ``linear_backoff_delays()``, ``deadline_provider`` to ``pass_deadline_through()``."""
    return SequentialStrategy(
        attempts_count=attempts_count,
        delays_provider=delays_provider if delays_provider is not None else linear_backoff_delays(),
        deadline_provider=deadline_provider if deadline_provider is not None else pass_deadline_through(),
    )


def retry_until_deadline_expired(
    *, delays_provider: DelaysProvider | RequestAttemptDelaysProvider | None = None
) -> SequentialStrategy:
    """aio-request's ``retry_until_deadline_expired``: attempts until one is accepted or the
    deadline is spent, waiting ``delays_provider`` between them (``linear_backoff_delays()``).

    Unlike aio-request's, it is also bounded by the retry budget (the client's, carried by the
    request), so a dead endpoint does not get an unbounded stream of retries from every caller.
    """
    return SequentialStrategy(
        attempts_count=_UNTIL_DEADLINE,
        delays_provider=delays_provider if delays_provider is not None else linear_backoff_delays(),
    )


#: Attempts for ``retry_until_deadline_expired``: in practice the deadline and budget end it.
_UNTIL_DEADLINE = 1_000_000
