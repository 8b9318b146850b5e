"""``ParallelStrategy``: hedged requests. The first *accepted* response wins; the rest are cancelled.

Attempt 1 starts at once. Attempt k starts ``delays_provider(k - 1)`` seconds after attempt k-1
started, or at once when an earlier attempt is rejected (a fast error never wins; an error the
classifier calls final stops new attempts, but running ones may still win), unless that
rejection carries ``Retry-After``: then no attempt starts before it (nor at all when it asks for
more than the time left). Each extra attempt spends from the retry budget. All attempts run as
tasks of one ``TaskGroup`` inside the call (they copy the caller's contextvars); when the call
returns, raises or is cancelled, every other attempt has been cancelled and awaited and every
response but the returned one closed, so nothing outlives it. A call cancelled (by its caller,
or by ``ClientDeadline``) after a response was chosen closes that one too, and a cancellation
arriving again while responses are being closed does not stop the others being closed.

A classifier that raises has its own exception raised, as ``SequentialStrategy`` does, never an
``ExceptionGroup``. An attempt that ends cancelled though the race did not cancel it (a library
cancelling its own task) failed without a verdict: it counts as a ``TransportError`` (it may or
may not have reached the server), tried again as any failure is, and a caller nobody cancelled
never sees a ``CancelledError``. A learning ``delays_provider`` is told what each attempt says
of the endpoint's latency, as ``latency_sample`` rules: the winner's time, and attempts cut by
the deadline (whoever cancelled the call) or outrun by the winner as "at least this slow".
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from aio_pipeline.chain import Handler
from aio_pipeline.errors import TransportError
from aio_pipeline.extensions import budget_for, classifier_for, event_hooks_for, with_client_defaults
from aio_pipeline.http import Request, Response
from aio_pipeline.policy import (
    BudgetExhausted,
    DelaysProvider,
    Emitter,
    EventHook,
    HedgeStarted,
    Outcome,
    RequestAttemptDelaysProvider,
    ResponseClassifier,
    RetryAfterGaveUp,
    RetryAfterHonoured,
    RetryBudget,
    RetryScheduled,
    check_kind,
    check_strategy_options,
    close_all,
    delay_for,
    is_repeatable,
    latency_sample,
    linear_backoff_delays,
    plan_wait,
    retry_after_of,
    run_attempt,
)
from aio_pipeline.propagation import LOW_TIMEOUT_THRESHOLD, Priority

__all__ = ["ParallelStrategy", "parallel_strategy"]

# A timer may wake a hair before its time (float rounding); an attempt that close is due.
_EARLY = 1e-6


@dataclass(frozen=True, slots=True)
class ParallelStrategy:
    """Up to ``attempts_count`` overlapping attempts of one call.

    Only idempotent requests are hedged; others get one attempt, repeated only after a failure
    that proves it never left the machine. Extra attempts spend from ``budget`` (its own, else
    the request's) and from ``hedge_budget`` if given; when either is spent, no more start. No
    attempt after the first starts with less than ``low_timeout_threshold`` left of the deadline
    (the first was checked by ``ClientDeadline``).

    Options:
        attempts_count: the most attempts, a count >= 1; default 3.
        delays_provider: seconds from the start of attempt n to the start of attempt n + 1,
            ``delays_provider(n)``; a ``PercentileBasedRequestAttemptDelaysProvider`` hedges at
            observed latency, learnt from the attempts as ``latency_sample`` rules; default
            ``linear_backoff_delays()``.
        classifier: judges outcomes; default ``None``: the client's, carried by the request, else
            ``DefaultResponseClassifier()``.
        budget: the retry budget every extra attempt withdraws from; default ``None``: the one the
            request carries, if any.
        hedge_budget: a second budget, a cap on this strategy's extra load (e.g.
            ``RetryBudget(ratio=0.05)``); default ``None``: none.
        hedge_priority: the priority sent with hedges (e.g. ``Priority.LOW``); default ``None``:
            the request's.
        max_retry_after: the longest ``Retry-After`` honoured, seconds; default 30.
        event_hooks: more hooks told of attempts, hedges, retries, the budget and
            ``Retry-After``, besides those the request carries; default none.
        low_timeout_threshold: seconds; default ``None``: the client's, given by ``setup()``,
            else 0.005 (5 ms).
    """

    attempts_count: int = 3
    delays_provider: DelaysProvider | RequestAttemptDelaysProvider = field(default_factory=linear_backoff_delays)
    classifier: ResponseClassifier | None = None
    budget: RetryBudget | None = None
    hedge_budget: RetryBudget | None = None
    hedge_priority: Priority | None = None
    max_retry_after: float = 30.0
    event_hooks: Sequence[EventHook] = ()
    low_timeout_threshold: float | None = None

    def __post_init__(self) -> None:
        check_strategy_options(
            self.attempts_count,
            self.delays_provider,
            self.max_retry_after,
            classifier=self.classifier,
            budgets={"budget": self.budget, "hedge_budget": self.hedge_budget},
        )
        check_kind("hedge_priority", self.hedge_priority, Priority)
        threshold = self.low_timeout_threshold
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < math.inf
        ):
            raise ValueError(
                f"low_timeout_threshold must be None or a finite number of seconds >= 0, got {threshold!r}"
            )
        object.__setattr__(self, "event_hooks", tuple(self.event_hooks))

    def with_defaults(
        self,
        *,
        budget: RetryBudget | None,
        classifier: ResponseClassifier | None,
        event_hooks: Sequence[EventHook],
        low_timeout_threshold: float | None = None,
    ) -> ParallelStrategy:
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

    @property
    def _threshold(self) -> float:
        own = self.low_timeout_threshold
        return LOW_TIMEOUT_THRESHOLD if own is None else own

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        return await _Race(self, request, call_next).run()


def parallel_strategy(
    *, attempts_count: int = 3, delays_provider: DelaysProvider | RequestAttemptDelaysProvider | None = None
) -> ParallelStrategy:
    """aio-request's ``parallel_strategy``: a ``ParallelStrategy``.

    Options:
        attempts_count: the most attempts, a count >= 1; default 3.
        delays_provider: seconds from the start of attempt n to the start of attempt n + 1,
            ``delays_provider(n)``; default ``None``: ``linear_backoff_delays()``.
    """
    return ParallelStrategy(
        attempts_count=attempts_count,
        delays_provider=delays_provider if delays_provider is not None else linear_backoff_delays(),
    )


class _Attempt:
    """One attempt of a race: its request, when the race started it, its task, how it ended."""

    __slots__ = ("error", "outcome", "request", "started_at", "task")

    def __init__(self, request: Request, started_at: float) -> None:
        self.request = request
        self.started_at = started_at
        self.task: asyncio.Task[None] | None = None
        self.outcome: Outcome | None = None  # set when it finishes, whether or not the race looks
        self.error: Exception | None = None  # what the classifier raised, judging it


class _Race:
    """The state of one hedged call; it lives exactly as long as the call."""

    __slots__ = (
        "_attempts",
        "_budgets",
        "_call_next",
        "_classifier",
        "_cut_at",
        "_events",
        "_group",
        "_last",
        "_loop",
        "_lost_to",
        "_next_start",
        "_not_before",
        "_request",
        "_stopped",
        "_strategy",
    )

    def __init__(self, strategy: ParallelStrategy, request: Request, call_next: Handler[Request, Response]) -> None:
        self._strategy = strategy
        self._request = request
        self._call_next = call_next
        self._loop = asyncio.get_running_loop()
        self._events = Emitter(event_hooks_for(strategy.event_hooks, request))
        self._classifier = classifier_for(strategy.classifier, request)
        own = budget_for(strategy.budget, request)
        self._budgets = [budget for budget in (own, strategy.hedge_budget) if budget is not None]
        self._group: asyncio.TaskGroup | None = None
        self._attempts: list[_Attempt] = []
        self._next_start = math.inf  # loop time at which the next attempt is due
        self._not_before = -math.inf  # the server's Retry-After pushback
        self._stopped = False
        self._last: Outcome | None = None  # the latest rejected outcome, returned if none wins
        self._cut_at = math.nan  # loop time at which the race cut the attempts still running
        self._lost_to: float | None = None  # the winner's latency, when one won

    async def run(self) -> Response:
        for budget in self._budgets:
            budget.deposit()
        chosen: Outcome | None = None
        failure: Exception | None = None
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                try:
                    self._start()
                    chosen = await self._race()
                except Exception as error:
                    # A classifier or delays provider that raises: raised below as it is, as
                    # SequentialStrategy does, not wrapped in the group's ExceptionGroup.
                    failure = error
                finally:
                    self._cut_at = self._loop.time()  # whatever ended the race cut what still runs
                if chosen is not None and chosen.accepted and isinstance(chosen.result, Response):
                    self._lost_to = chosen.elapsed
                for attempt in self._attempts:
                    assert attempt.task is not None
                    attempt.task.cancel()  # the group awaits them before the call goes on
        except BaseException:
            # Cancelled (by the caller, or ClientDeadline's timer) while racing or while the
            # losers were being cancelled and awaited: nothing is returned, so every response
            # held is closed, the chosen one and the latest rejected one included.
            await self._finish(None)
            raise
        await self._finish(chosen)
        if chosen is None:
            assert failure is not None
            raise failure
        return chosen.unwrap()

    async def _race(self) -> Outcome:
        while True:
            now = self._loop.time()
            can_start = self._can_start()
            if can_start and now >= self._next_start - _EARLY:
                self._start()
                continue
            running = [
                attempt.task for attempt in self._attempts if attempt.task is not None and not attempt.task.done()
            ]
            timeout = self._next_start - now if can_start else None
            if not running:
                if timeout is None:
                    assert self._last is not None  # attempt 1 ran, and was rejected
                    return self._last
                await asyncio.sleep(timeout)  # only when waiting out a Retry-After
                continue
            done, _ = await asyncio.wait(running, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finished = [self._ended(attempt) for attempt in self._attempts if attempt.task in done]  # by attempt
            for outcome in finished:
                if outcome.accepted and isinstance(outcome.result, Response):
                    return outcome
            for outcome in finished:
                await self._settle(outcome)

    def _ended(self, attempt: _Attempt) -> Outcome:
        """How a finished attempt ended. The race cancels no attempt while it runs, so one that
        ended cancelled was cancelled by something else (a library cancelling its own task): it
        failed without a verdict, as a ``TransportError`` (it may or may not have reached the
        server), and the caller, whom nobody cancelled, does not see a ``CancelledError``."""
        if attempt.error is not None:
            raise attempt.error  # the classifier's own exception (its response is closed)
        if attempt.outcome is None:
            assert attempt.task is not None
            try:
                attempt.task.result()  # only a CancelledError gets here (or a BaseException, raised)
            except asyncio.CancelledError as cancelled:
                error = TransportError(
                    f"attempt {attempt.request.attempt} was cancelled, not by the hedging race", request=attempt.request
                )
                error.__cause__ = cancelled
                elapsed = self._loop.time() - attempt.started_at
                attempt.outcome = Outcome(attempt.request, error, None, attempt.started_at, elapsed)
        assert attempt.outcome is not None
        return attempt.outcome

    async def _run(self, attempt: _Attempt) -> None:
        """One attempt's task. It never fails (a failure would cancel the whole group and come
        out as an ExceptionGroup): what it ends with is left on ``attempt`` for the race."""
        try:
            outcome = await run_attempt(self._call_next, attempt.request, self._classifier, self._events)
        except Exception as error:  # only a classifier raises out of run_attempt
            attempt.error = error
            return
        result = outcome.result
        if isinstance(result, Response) and result.elapsed < 0:
            result.elapsed = outcome.elapsed  # timed anyway: aio-request's response.elapsed
        attempt.outcome = outcome

    def _can_start(self) -> bool:
        if self._stopped or len(self._attempts) >= self._strategy.attempts_count or self._next_start == math.inf:
            return False
        deadline = self._request.deadline
        return deadline is None or self._next_start <= deadline.deadline_at - self._strategy._threshold

    def _start(self) -> None:
        number = len(self._attempts) + 1
        running = any(attempt.task is not None and not attempt.task.done() for attempt in self._attempts)
        kind = "first" if number == 1 else "hedge" if running else "retry"
        self._next_start = math.inf
        request = self._request
        if number > 1:
            if request.deadline is not None and request.deadline.timeout < self._strategy._threshold:
                self._stopped = True
                return
            if not self._withdraw(number, kind):
                return
        priority = self._strategy.hedge_priority if kind == "hedge" else None
        attempt_request = request.replace(
            attempt=number, attempt_kind=kind, priority=priority if priority is not None else request.priority
        )
        now = self._loop.time()
        if kind == "hedge" and self._events:
            self._events.emit(HedgeStarted(attempt_request, now - self._attempts[-1].started_at))
        attempt = _Attempt(attempt_request, now)
        self._attempts.append(attempt)
        assert self._group is not None
        attempt.task = self._group.create_task(self._run(attempt), name=f"aio_pipeline attempt {number}")
        if request.is_idempotent and number < self._strategy.attempts_count:
            delay = delay_for(self._strategy.delays_provider, request, number)
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
        if self._last is not None:
            await self._last.discard()  # only the latest outcome may be returned
        self._last = outcome
        if self._stopped or len(self._attempts) >= self._strategy.attempts_count:
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
            self._events.emit(RetryScheduled(outcome.request, len(self._attempts) + 1, self._next_start - now))

    async def _finish(self, keep: Outcome | None) -> None:
        """After the group: tell the latency tracker what the attempts say, then close every
        response but ``keep``'s (the one returned), each to its end even if the call is cancelled
        meanwhile. If that is interrupted (cancelled, or a close failed), ``keep``'s will not be
        returned after all, so it is closed too."""
        provider = self._strategy.delays_provider
        if isinstance(provider, RequestAttemptDelaysProvider):
            self._observe(provider)
        held = [
            attempt.outcome.result
            for attempt in self._attempts
            if attempt.outcome is not None
            and attempt.outcome is not keep
            and isinstance(attempt.outcome.result, Response)
        ]
        if not held:  # the usual case: the winner was the only response
            return
        try:
            await close_all(held)
        except BaseException:
            if keep is not None and isinstance(keep.result, Response):
                await close_all((keep.result,))
            raise

    def _observe(self, provider: RequestAttemptDelaysProvider) -> None:
        """Each attempt's latency, as ``latency_sample`` rules: a finished one by its outcome; one
        the race cut (it had not finished when the race ended) at ``_cut_at``, when a winner
        outran it or the deadline had come, whoever cancelled the call."""
        for attempt in self._attempts:
            outcome = attempt.outcome
            if outcome is not None:
                seconds = latency_sample(
                    outcome.request,
                    outcome.result,
                    accepted=outcome.accepted,
                    started_at=outcome.started_at,
                    elapsed=outcome.elapsed,
                )
            elif attempt.error is None:
                elapsed = self._cut_at - attempt.started_at
                seconds = latency_sample(
                    attempt.request,
                    None,
                    accepted=False,
                    started_at=attempt.started_at,
                    elapsed=elapsed,
                    lost_to=self._lost_to,
                )
            else:
                seconds = None
            if seconds is not None:
                provider.observe(self._request, seconds)
