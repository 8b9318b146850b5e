"""Soak and cancellation storm: the full facade stack, with hedging, for a long run.

    python -m benchmarks.soak [--calls 100000] [--storm 10000] [--concurrency 64] [--seed 1]

The server is ``benchmarks.server`` in its own process on 127.0.0.1. The client is ``setup()``
with a circuit breaker, a retry budget, Prometheus metrics on a private registry (when
prometheus-client is installed) and, for GET, hedging at the p95 of observed latency
(``PercentileBasedRequestAttemptDelaysProvider``). Three phases:

1. soak: ``--calls`` calls at ``--concurrency``, mostly to the heavy-tailed ``/tail`` (hedged),
   some to ``/fast`` and to ``/flaky?p=0.05`` (retried). RSS is read at 10k calls, every tenth
   of the run and once the run has settled; tasks, open file descriptors and connections before
   and after; the size of the breaker's, the budget's and the latency tracker's state.
2. key churn: 2,000 calls to 2,000 distinct URL templates (404s) through a client sharing the
   tracker, to show that its keys are capped (``max_keys``, 1000).
3. cancellation storm: ``--storm`` calls, each cancelled by its caller with probability 1/2 at a
   random point of its first 30 ms. Afterwards no connection is checked out and no task is left,
   and each call that entered the stack is in the call histogram exactly once (each attempt in
   the attempt histogram exactly once): nothing lost, nothing double-counted.

Prints a table and exits 1 if a check fails. Reading the connector's and the tracker's state
uses private attributes (``_acquired``, ``_conns``, ``_keys``): there is no public API for them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import random
import subprocess
import sys
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

import aio_pipeline as ap
from aio_pipeline import Handler, Request, Response

#: (path, weight) of the soak's and the storm's calls.
MIX = [("tail", 70), ("fast", 20), ("flaky?p=0.05", 10)]
DEADLINE = 2.0
STORM_CANCEL_WITHIN = 0.03
CHURN_CALLS = 2000


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def tasks() -> int:
    return len(asyncio.all_tasks())


def percentile(ordered: Sequence[float], q: float) -> float:
    """The ``q``-th percentile of values already sorted."""
    return ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] if ordered else float("nan")


@dataclass
class Tally:
    """What the stack was asked to do, counted at its edges, to compare with the metrics."""

    entered: int = 0  # calls that reached the outermost call middleware
    attempts: int = 0  # AttemptStarted events
    statuses: Counter[str] = field(default_factory=Counter)

    async def count_call(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        self.entered += 1
        return await call_next(ap.with_event_hook(request, self.count_attempt))

    def count_attempt(self, event: ap.Event) -> None:
        if isinstance(event, ap.AttemptStarted):
            self.attempts += 1


def metrics_provider() -> tuple[Any, Any] | tuple[None, None]:
    """A Prometheus provider on a private registry, or ``(None, None)`` without one."""
    try:
        from prometheus_client import CollectorRegistry
    except ImportError:
        return None, None
    provider_class = getattr(ap, "PrometheusMetricsProvider", None)
    if provider_class is None:
        try:
            from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider as provider_class
        except ImportError:
            return None, None
    registry = CollectorRegistry()
    return provider_class(registry=registry), registry


def histogram_count(registry: Any, name: str) -> int:
    return int(
        sum(
            sample.value
            for family in registry.collect()
            if family.name == name
            for sample in family.samples
            if sample.name == f"{name}_count"
        )
    )


def label_sets(registry: Any) -> int:
    """Distinct label sets over every metric (histogram buckets not counted apart)."""
    return len(
        {
            (family.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le")))
            for family in registry.collect()
            for sample in family.samples
        }
    )


@dataclass
class Stack:
    """The client under test and the state it owns."""

    client: ap.Client
    breaker: ap.DefaultCircuitBreaker[str, Response]
    budget: ap.RetryBudget
    tracker: ap.PercentileBasedRequestAttemptDelaysProvider
    tally: Tally
    registry: Any


def build(session: aiohttp.ClientSession, base: str, tracker: ap.PercentileBasedRequestAttemptDelaysProvider) -> Stack:
    breaker = ap.DefaultCircuitBreaker[str, Response](
        break_duration=1.0, sampling_duration=10.0, minimum_throughput=200, failure_threshold=0.5
    )
    budget = ap.RetryBudget()
    tally = Tally()
    provider, registry = metrics_provider()
    client = ap.setup(
        transport=ap.AioHttpTransport(session),
        endpoint=base,
        safe_method_strategy=ap.parallel_strategy(attempts_count=2, delays_provider=tracker),
        circuit_breaker=breaker,
        retry_budget=budget,
        metrics_provider=provider,
        call_middlewares=[tally.count_call],
    )
    return Stack(client, breaker, budget, tracker, tally, registry)


async def one_call(stack: Stack, request: Request) -> str:
    async with stack.client.request(request, deadline=ap.Deadline.from_timeout(DEADLINE)) as response:
        await response.read()
        return str(response.status)


async def soak(stack: Stack, calls: int, concurrency: int, rng: random.Random, report: dict[str, Any]) -> None:
    paths = [path for path, weight in MIX for _ in range(weight)]
    latencies = report["latencies"]  # allocated before the first RSS reading: it must not count as growth
    step = max(calls // 10, 1)
    marks = set(range(step, calls + 1, step)) | {min(10_000, calls)}
    report["rss"] = []
    done = 0
    next_call = iter(range(calls))

    async def worker() -> None:
        nonlocal done
        for n in next_call:
            started = time.perf_counter()
            status = await one_call(stack, ap.get(rng.choice(paths)))
            latencies[n] = time.perf_counter() - started
            stack.tally.statuses[status] += 1
            done += 1
            if done in marks:
                gc.collect()
                report["rss"].append((done, rss_mib()))

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    report["soak_seconds"] = time.perf_counter() - started


async def churn(stack: Stack, concurrency: int) -> None:
    """Distinct templates, each its own (method, route) key in the latency tracker."""
    next_call = iter(range(CHURN_CALLS))

    async def worker() -> None:
        for n in next_call:
            await one_call(stack, ap.get(f"nowhere-{n}/{{id}}", path_parameters={"id": n}))

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def storm(stack: Stack, calls: int, concurrency: int, rng: random.Random) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    paths = [path for path, weight in MIX for _ in range(weight)]
    next_call = iter(range(calls))

    async def worker() -> None:
        for _ in next_call:
            task = asyncio.create_task(one_call(stack, ap.get(rng.choice(paths))))
            if rng.random() < 0.5:
                await asyncio.sleep(rng.uniform(0, STORM_CANCEL_WITHIN))
                task.cancel()
            try:
                outcomes[await task] += 1
            except asyncio.CancelledError:
                outcomes["cancelled"] += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def connections(session: aiohttp.ClientSession) -> tuple[int, int]:
    """(checked out, idle in the pool)."""
    connector = session.connector
    assert connector is not None
    return len(connector._acquired), sum(len(idle) for idle in connector._conns.values())


async def run(base: str, args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[str]]:
    rng = random.Random(args.seed)
    rows: list[tuple[str, str]] = []
    failures: list[str] = []

    def check(ok: bool, what: str) -> str:
        if not ok:
            failures.append(what)
        return "ok" if ok else "FAILED"

    report: dict[str, Any] = {"latencies": array("d", bytes(8 * args.calls))}
    gc.collect()
    tasks_before, fds_before, rss_before = tasks(), open_fds(), rss_mib()
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:
        tracker = ap.PercentileBasedRequestAttemptDelaysProvider(min_delay_seconds=0.005)
        stack = build(session, base, tracker)
        await soak(stack, args.calls, args.concurrency, rng, report)
        await asyncio.sleep(0.3)  # losing hedges: cancelled, their connections closed by now
        gc.collect()
        rss_end = rss_mib()  # before sorting the latencies: 100k float objects are the script's, not the stack's
        latencies = sorted(report["latencies"])
        p50, p99, worst = (percentile(latencies, q) * 1000 for q in (50, 99, 100))
        out, idle = connections(session)
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(stack.tally.statuses.items()))
        rss = sorted(set(report["rss"]))
        at_10k = next((mib for n, mib in rss if n >= 10_000), math.nan)
        rows += [
            ("soak calls", f"{args.calls} at concurrency {args.concurrency} in {report['soak_seconds']:.1f} s"),
            ("  calls/s", f"{args.calls / report['soak_seconds']:.0f}"),
            (
                "  latency p50 / p99 / max",
                f"{p50:.1f} / {p99:.1f} / {worst:.1f} ms",
            ),
            ("  statuses", statuses),
            ("  attempts per call", f"{stack.tally.attempts / stack.tally.entered:.3f}"),
            ("  RSS MiB at start", f"{rss_before:.1f}"),
            ("  RSS MiB by calls done", ", ".join(f"{n // 1000}k: {mib:.1f}" for n, mib in rss)),
            ("  RSS MiB once settled (end)", f"{rss_end:.1f}"),
            ("  RSS growth 10k -> end", f"{rss_end - at_10k:+.1f} MiB"),
            ("  tasks before / after", f"{tasks_before} / {tasks()}  {check(tasks() == tasks_before, 'soak tasks')}"),
            (
                "  fds before / after",
                f"{fds_before} / {open_fds()}, of which {idle} idle pooled connections  "
                f"{check(open_fds() - idle == fds_before, 'soak fds')}",
            ),
            ("  connections checked out", f"{out}  {check(out == 0, 'soak connections checked out')}"),
            ("  breaker keys (max_keys)", f"{len(stack.breaker.state)} ({stack.breaker.max_keys})"),
            ("  budget buckets (fixed)", str(stack.budget.buckets)),
            ("  budget calls / extra in window", f"{stack.budget.first_attempts} / {stack.budget.extra_attempts}"),
            ("  tracker keys", str(len(tracker._keys))),
        ]
        if stack.registry is not None:
            rows.append(("  metric label sets", str(label_sets(stack.registry))))
        churner = build(session, base, tracker)  # shares the tracker; metrics on its own registry
        await churn(churner, args.concurrency)
        keys = len(tracker._keys)
        capped = check(keys <= tracker.max_keys, "tracker keys")
        rows.append(
            (f"churn: tracker keys after {CHURN_CALLS} new routes", f"{keys} (max_keys {tracker.max_keys})  {capped}")
        )
        storm_stack = build(session, base, ap.PercentileBasedRequestAttemptDelaysProvider(min_delay_seconds=0.005))
        tasks_mid = tasks()
        outcomes = await storm(storm_stack, args.storm, args.concurrency, rng)
        await asyncio.sleep(0.3)
        gc.collect()
        out, idle = connections(session)
        rows += [
            ("storm calls", f"{args.storm}: " + ", ".join(f"{k}: {v}" for k, v in sorted(outcomes.items()))),
            ("  tasks before / after", f"{tasks_mid} / {tasks()}  {check(tasks() == tasks_mid, 'storm tasks')}"),
            ("  connections checked out", f"{out}  {check(out == 0, 'storm connections checked out')}"),
        ]
        if storm_stack.registry is None:
            rows.append(("  metrics", "skipped: no Prometheus provider importable"))
        else:
            observed_calls = histogram_count(storm_stack.registry, "aio_pipeline_client_request_duration_seconds")
            observed_attempts = histogram_count(storm_stack.registry, "aio_pipeline_client_attempt_duration_seconds")
            tally = storm_stack.tally
            rows += [
                (
                    "  calls entered / observed",
                    f"{tally.entered} / {observed_calls}  {check(tally.entered == observed_calls, 'storm calls')}",
                ),
                (
                    "  attempts started / observed",
                    f"{tally.attempts} / {observed_attempts}  "
                    f"{check(tally.attempts == observed_attempts, 'storm attempts')}",
                ),
            ]
    await asyncio.sleep(0.1)  # closed transports let go of their sockets
    gc.collect()
    clean = check(tasks() == tasks_before and open_fds() == fds_before, "after close")
    rows.append(
        ("session closed: tasks / fds", f"{tasks()} / {open_fds()} (at start {tasks_before} / {fds_before})  {clean}")
    )
    return rows, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--storm", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", "--port", "0", "--seed", str(args.seed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    started = time.perf_counter()
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        rows, failures = asyncio.run(run(f"http://127.0.0.1:{port}/", args))
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
    width = max(len(name) for name, _ in rows)
    print(f"python -m benchmarks.soak --calls {args.calls} --storm {args.storm} --concurrency {args.concurrency}")
    wall = time.perf_counter() - started
    print(f"{wall:.0f} s wall, Python {sys.version.split()[0]}, {os.cpu_count()} cores")
    for name, value in rows:
        print(f"{name:{width}}  {value}")
    if failures:
        print("FAILED: " + ", ".join(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
