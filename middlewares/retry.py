"""``SequentialStrategy``: attempt, classify, wait, attempt again; deadline-aware and budgeted.

The *policy* (is the outcome final, may this request be sent again, how long to wait) lives in
the core (``_classify``, ``_delays``, ``_retry_after``, ``_budget``); this module is the
*mechanics*: the loop, closing what it will not return, and sleeping.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aio_pipeline.chain import Handler, Middleware
from aio_pipeline.errors import DeadlineRejectedError
from aio_pipeline.extensions import budget_for, classifier_for, event_hooks_for, with_client_defaults
from aio_pipeline.http import Request, Response
from aio_pipeline.policy import (
    BudgetExhausted,
    DelaysProvider,
    Emitter,
    EventHook,
    Outcome,
    RequestAttemptDelaysProvider,
    ResponseClassifier,
    ResponseVerdict,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryBudget,
    RetryScheduled,
    WaitPlan,
    check_strategy_options,
    delay_for,
    is_repeatable,
    linear_backoff_delays,
    plan_wait,
    retry_after_of,
    run_attempt,
)
from aio_pipeline.propagation import LOW_TIMEOUT_THRESHOLD, Deadline, loop_time

__all__ = [
    "DeadlineProvider",
    "RetryUntilDeadlineExpiredStrategy",
    "SequentialStrategy",
    "pass_deadline_through",
    "retry_until_deadline_expired",
    "sequential_strategy",
    "split_deadline_between_attempts",
]

#: ``(call deadline, attempt index from 0, attempts count) -> the attempt's deadline``.
DeadlineProvider: TypeAlias = Callable[[Deadline, int, int], Deadline]


def split_deadline_between_attempts(
    *, attempts_count_to_split: int | None = None, split_factor: int | None = None
) -> DeadlineProvider:
    """Give each attempt an equal share of the time left among the attempts left, as aio-request.

    With 9 s and 3 attempts, the first gets 3 s; if it fails after 1 s, the second gets 4 s, the
    last everything left.

    Options:
        attempts_count_to_split: caps the number of shares, a count >= 2: with 3 attempts and 2,
            the first gets half, the rest the remainder; default ``None`` (one share per attempt).
        split_factor: the older name of ``attempts_count_to_split`` (give one, not both);
            default ``None``.
    """
    if attempts_count_to_split is not None and split_factor is not None:
        raise ValueError("give attempts_count_to_split or split_factor (its older name), not both")
    name = "split_factor" if split_factor is not None else "attempts_count_to_split"
    count = split_factor if split_factor is not None else attempts_count_to_split
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 2):
        raise ValueError(f"{name} must be an integer >= 2, got {count!r}")

    def split(deadline: Deadline, attempt: int, attempts_count: int) -> Deadline:
        shares = (attempts_count if count is None else min(count, attempts_count)) - attempt
        return deadline / shares if shares > 1 and not deadline.expired else deadline

    return split


def pass_deadline_through() -> DeadlineProvider:
    """Give every attempt all the time left of the call (the default)."""
    return lambda deadline, attempt, attempts_count: deadline


@dataclass(frozen=True, slots=True)
class SequentialStrategy:
    """Up to ``attempts_count`` attempts, one after the other.

    An attempt the ``classifier`` rejects is closed, then the strategy waits
    ``delays_provider(attempt)`` seconds, or longer if a 429/503 asks so with ``Retry-After``
    (honoured up to ``max_retry_after``), and tries again. It stops at once, returning the last
    response or re-raising the last exception, when: the outcome is accepted; the count is
    reached; the request is not idempotent (unless the failure proves it never left the machine);
    the wait would leave less than the low-timeout threshold of the deadline; or the retry
    ``budget`` (its own, else the request's) is spent. Each attempt's deadline comes from
    ``deadline_provider`` and is never later than the call's. No attempt starts with less than
    ``low_timeout_threshold`` left of its own deadline: a first attempt refused so raises
    ``DeadlineRejectedError`` (nothing was sent); a later one ends the call with the last outcome.

    Options:
        attempts_count: the most attempts, a count >= 1; default 3.
        delays_provider: seconds to wait after the n-th attempt, ``delays_provider(n)``; a
            learning one (a ``RequestAttemptDelaysProvider``) is told each attempt's latency as
            ``latency_sample`` rules: answers, and attempts cut by their deadline, whoever
            cancelled them, as "at least this slow"; never instant refusals; default
            ``linear_backoff_delays()``.
        deadline_provider: each attempt's deadline from the call's (a ``DeadlineProvider``);
            default ``pass_deadline_through()``: the whole remainder
            (``split_deadline_between_attempts()`` shares it).
        classifier: which outcomes are rejected, and so retried; default ``None``: the client's,
            carried by the request, else ``DefaultResponseClassifier()``.
        budget: the retry budget every retry withdraws from (the call deposits in it); default
            ``None``: the one the request carries, if any.
        max_retry_after: the longest ``Retry-After`` honoured, seconds; a longer one ends the
            call with its outcome; default 30.
        event_hooks: more hooks told of attempts, retries, the budget and ``Retry-After``,
            besides those the request carries; default none.
        low_timeout_threshold: seconds; default ``None``: the client's, given by ``setup()``,
            else 0.005 (5 ms).
    """

    attempts_count: int = 3
    delays_provider: DelaysProvider | RequestAttemptDelaysProvider = field(default_factory=linear_backoff_delays)
    deadline_provider: DeadlineProvider = field(default_factory=pass_deadline_through)
    classifier: ResponseClassifier | None = None
    budget: RetryBudget | None = None
    max_retry_after: float = 30.0
    event_hooks: Sequence[EventHook] = ()
    low_timeout_threshold: float | None = None

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
        check_threshold(self.low_timeout_threshold)
        object.__setattr__(self, "event_hooks", tuple(self.event_hooks))

    def with_defaults(
        self,
        *,
        budget: RetryBudget | None,
        classifier: ResponseClassifier | None,
        event_hooks: Sequence[EventHook],
        low_timeout_threshold: float | None = None,
    ) -> SequentialStrategy:
        """A copy that uses ``budget``, ``classifier`` and ``low_timeout_threshold`` unless it has
        its own, and reports to ``event_hooks`` too: how ``PerCallStrategy`` gives it the
        client's, once."""
        return with_client_defaults(
            self,
            budget=budget,
            classifier=classifier,
            event_hooks=event_hooks,
            low_timeout_threshold=low_timeout_threshold,
        )

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        budget = budget_for(self.budget, request)
        events = Emitter(event_hooks_for(self.event_hooks, request))
        classifier = classifier_for(self.classifier, request)
        # A learning delays provider is told what each attempt says of the endpoint's latency.
        latency = self.delays_provider if isinstance(self.delays_provider, RequestAttemptDelaysProvider) else None
        if budget is not None:
            budget.deposit()
        threshold = self.low_timeout_threshold
        if threshold is None:
            threshold = LOW_TIMEOUT_THRESHOLD
        attempt = 1
        outcome: Outcome | None = None
        while True:
            attempt_request = self._attempt_request(request, attempt)
            deadline = attempt_request.deadline
            # Before every attempt: none starts with less than the threshold left of its own
            # deadline. The first one with the call's whole deadline was checked by ClientDeadline
            # just before; a later one, or a share of the deadline, is checked here.
            if (
                deadline is not None
                and (attempt > 1 or deadline is not request.deadline)
                and deadline.deadline_at - loop_time() < threshold
            ):
                if outcome is None:
                    raise DeadlineRejectedError(
                        f"attempt {attempt} not sent: less than {threshold * 1000:.1f} ms left",
                        request=attempt_request,
                    )
                return outcome.unwrap()
            outcome = await run_attempt(call_next, attempt_request, classifier, events, latency)
            result = outcome.result
            if isinstance(result, Response) and result.elapsed < 0:
                result.elapsed = outcome.elapsed  # timed anyway: aio-request's response.elapsed
            plan = self._plan(request, outcome, events, threshold)
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

    def _plan(self, request: Request, outcome: Outcome, events: Emitter, threshold: float) -> WaitPlan | None:
        """How long to wait before the next attempt; ``None`` or no delay: do not try again."""
        attempt = outcome.request.attempt
        if outcome.accepted or attempt >= self.attempts_count or not is_repeatable(request, outcome.result):
            return None
        plan = plan_wait(
            delay_for(self.delays_provider, request, attempt),
            retry_after_of(outcome.result),
            max_retry_after=self.max_retry_after,
            remaining=_usable(request.deadline, threshold),
        )
        if plan.delay is None and plan.retry_after is not None and events:
            events.emit(RetryAfterGaveUp(outcome.request, plan.retry_after, plan.limit))
        return plan


def check_threshold(value: object) -> None:
    """``ValueError`` unless ``value`` (a low-timeout threshold) is ``None`` or seconds >= 0."""
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf
    ):
        raise ValueError(f"low_timeout_threshold must be None or a finite number of seconds >= 0, got {value!r}")


def _usable(deadline: Deadline | None, threshold: float) -> float | None:
    """The seconds left of ``deadline`` as ``plan_wait`` should count them (``None``: no
    deadline): it keeps ``LOW_TIMEOUT_THRESHOLD`` back itself, so a larger client threshold is
    taken off here, and a wait after which less than it would remain is refused before sleeping."""
    if deadline is None:
        return None
    return deadline.timeout - max(threshold - LOW_TIMEOUT_THRESHOLD, 0.0)


def sequential_strategy(
    *,
    attempts_count: int = 3,
    delays_provider: DelaysProvider | RequestAttemptDelaysProvider | None = None,
    deadline_provider: DeadlineProvider | None = None,
) -> SequentialStrategy:
    """aio-request's ``sequential_strategy``: a ``SequentialStrategy``.

    Options:
        attempts_count: the most attempts, a count >= 1; default 3.
        delays_provider: seconds to wait after the n-th attempt, ``delays_provider(n)``;
            default ``None``: ``linear_backoff_delays()``.
        deadline_provider: each attempt's deadline from the call's; default ``None``:
            ``pass_deadline_through()`` (the whole remainder).
    """
    return SequentialStrategy(
        attempts_count=attempts_count,
        delays_provider=delays_provider if delays_provider is not None else linear_backoff_delays(),
        deadline_provider=deadline_provider if deadline_provider is not None else pass_deadline_through(),
    )


@dataclass(frozen=True, slots=True)
class RetryUntilDeadlineExpiredStrategy:
    """Runs ``base_strategy`` again and again until its outcome is accepted or the deadline passes.

    aio-request's strategy of that name: it waits ``delays_provider`` (never past the deadline)
    before the n-th repeat. Attempts are numbered across repeats (``X-Request-Attempt`` 1, 2,
    3, ...). Unlike aio-request's it is also bounded by the retry ``budget`` (its own, else the
    request's; each repeat of a base strategy is one extra attempt, and counts as a call for the
    base strategy itself), so a dead endpoint does not get an unbounded stream of retries from
    every caller, and a repeat that would start with less than the low-timeout threshold left
    is not made. A request that is not idempotent is repeated only after a failure that proves it
    never left, unless it was marked repeatable (a strategy chosen per call, or by
    ``setup(unsafe_method_strategy=...)``, is the caller's explicit choice).

    Options:
        base_strategy: the strategy repeated, any strategy; default ``None``: a single attempt,
            run as one unbounded sequence of attempts.
        delays_provider: seconds to wait before the n-th repeat, ``delays_provider(n)`` (a
            ``RequestAttemptDelaysProvider`` is asked with the request); default
            ``linear_backoff_delays()``.
        classifier: which outcomes are rejected, and so repeated; default ``None``: the client's,
            carried by the request, else ``DefaultResponseClassifier()``.
        budget: the retry budget every repeat withdraws from; default ``None``: the one the
            request carries, if any.
        event_hooks: more hooks told of the repeats and the budget, besides those the request
            carries; default none.
        low_timeout_threshold: seconds; no repeat starts with less time left; default ``None``:
            the client's, given by ``setup()``, else 0.005 (5 ms).
    """

    base_strategy: Middleware[Request, Response] | None = None
    delays_provider: DelaysProvider | RequestAttemptDelaysProvider = field(default_factory=linear_backoff_delays)
    classifier: ResponseClassifier | None = None
    budget: RetryBudget | None = None
    event_hooks: Sequence[EventHook] = ()
    low_timeout_threshold: float | None = None
    _unrolled: SequentialStrategy | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_strategy_options(
            1, self.delays_provider, 0.0, classifier=self.classifier, budgets={"budget": self.budget}
        )
        if self.base_strategy is not None and not callable(self.base_strategy):
            raise ValueError(f"base_strategy must be a strategy (a middleware), got {self.base_strategy!r}")
        check_threshold(self.low_timeout_threshold)
        object.__setattr__(self, "event_hooks", tuple(self.event_hooks))
        if self.base_strategy is None:
            unrolled = SequentialStrategy(
                attempts_count=_UNTIL_DEADLINE,
                delays_provider=self.delays_provider,
                classifier=self.classifier,
                budget=self.budget,
                event_hooks=self.event_hooks,
                low_timeout_threshold=self.low_timeout_threshold,
            )
            object.__setattr__(self, "_unrolled", unrolled)

    def with_defaults(
        self,
        *,
        budget: RetryBudget | None,
        classifier: ResponseClassifier | None,
        event_hooks: Sequence[EventHook],
        low_timeout_threshold: float | None = None,
    ) -> RetryUntilDeadlineExpiredStrategy:
        """A copy given the client's defaults, as ``SequentialStrategy.with_defaults``; its base
        strategy is given them too, when it takes them."""
        base = self.base_strategy
        bind = getattr(base, "with_defaults", None)
        if bind is not None:
            base = bind(
                budget=budget, classifier=classifier, event_hooks=(), low_timeout_threshold=low_timeout_threshold
            )
        return with_client_defaults(
            self,
            budget=budget,
            classifier=classifier,
            event_hooks=event_hooks,
            low_timeout_threshold=low_timeout_threshold,
            base_strategy=base,
        )

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        if self._unrolled is not None:
            return await self._unrolled(request, call_next)
        base = self.base_strategy
        assert base is not None
        budget = budget_for(self.budget, request)
        classifier = classifier_for(self.classifier, request)
        events = Emitter(event_hooks_for(self.event_hooks, request))
        threshold = LOW_TIMEOUT_THRESHOLD if self.low_timeout_threshold is None else self.low_timeout_threshold
        sent = 0

        def numbered(attempt: Request) -> Any:
            # The base numbers its attempts from 1 on every run: number them across runs.
            nonlocal sent
            sent += 1
            if attempt.attempt != sent:
                kind = "retry" if attempt.attempt_kind == "first" else attempt.attempt_kind
                attempt = attempt.replace(attempt=sent, attempt_kind=kind)
            return call_next(attempt)

        repeat = 0
        while True:
            result: Response | Exception
            try:
                result = await base(request, numbered)
            except Exception as error:
                result = error
            deadline = request.deadline
            if classifier.classify_result(result) is ResponseVerdict.ACCEPT or not is_repeatable(request, result):
                return _unwrap(result)
            if deadline is not None and deadline.expired:
                return _unwrap(result)
            repeat += 1
            delay = max(delay_for(self.delays_provider, request, repeat), 0.0)
            if deadline is not None:
                remaining = deadline.timeout
                delay = min(delay, remaining)  # as aio-request: never past the deadline
                if remaining - delay < threshold:
                    return _unwrap(result)
            if budget is not None and not budget.try_withdraw():
                if events:
                    events.emit(BudgetExhausted(request.replace(attempt=sent + 1), sent + 1, "retry"))
                return _unwrap(result)
            if isinstance(result, Response):
                await result.close()  # before sleeping: a rejected response must not hold a connection
            if events:
                events.emit(RetryScheduled(request.replace(attempt=sent), sent + 1, delay))
            await asyncio.sleep(delay)


def _unwrap(result: Response | Exception) -> Response:
    if isinstance(result, Response):
        return result
    raise result


def retry_until_deadline_expired(
    strategy: Middleware[Request, Response] | None = None,
    *,
    delays_provider: DelaysProvider | RequestAttemptDelaysProvider | None = None,
) -> RetryUntilDeadlineExpiredStrategy:
    """aio-request's ``retry_until_deadline_expired``: a ``RetryUntilDeadlineExpiredStrategy``.

    It repeats ``strategy`` until its outcome is accepted or the deadline is spent. Unlike
    aio-request's, it is also bounded by the retry budget (the client's, carried by the
    request), so a dead endpoint does not get an unbounded stream of retries from every caller.

    Options:
        strategy: the strategy repeated; default ``None``: a single attempt.
        delays_provider: seconds to wait before the n-th repeat, ``delays_provider(n)``;
            default ``None``: ``linear_backoff_delays()``.
    """
    return RetryUntilDeadlineExpiredStrategy(
        strategy, delays_provider if delays_provider is not None else linear_backoff_delays()
    )


#: Attempts for ``retry_until_deadline_expired``: in practice the deadline and budget end it.
_UNTIL_DEADLINE = 1_000_000
