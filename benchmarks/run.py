"""Run every scenario for every variant in one process, against one server process; print a
table, write JSON (and a latency CDF PNG for the heavy-tailed scenario when matplotlib is there).

    python -m benchmarks.run [--quick] [--out benchmarks/results]

Client CPU time per request (``time.process_time``) is the cost measure: the server is another
process, so only the client's own work counts. Variants run interleaved, round by round, so
that a noisy neighbour slows them all alike; ratios against raw aiohttp from the same run are
what to compare, not absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from .variants import VARIANTS, Call, _quiet_structlog


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    endpoint: str  # the server counter that path increments
    calls: int
    concurrency: int
    timeout: float


SCENARIOS = [
    Scenario("fast c=1", "fast", "fast", 2000, 1, 5.0),
    Scenario("fast c=64", "fast", "fast", 6000, 64, 5.0),
    Scenario("tail c=8", "tail", "tail", 1500, 8, 5.0),
    Scenario("flaky p=0.3", "flaky?p=0.3", "flaky", 1000, 8, 5.0),
    Scenario("slow 300ms, deadline 100ms", "slow?ms=300", "slow", 160, 8, 0.1),
]


@dataclass
class Result:
    scenario: str
    variant: str
    calls: int = 0
    errors: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    server_requests: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    overshoot_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, float | int | str]:
        lat = sorted(self.latencies_ms)
        over = sorted(self.overshoot_ms)
        return {
            "scenario": self.scenario,
            "variant": self.variant,
            "calls": self.calls,
            "errors": self.errors,
            "wall_s": round(self.wall_s, 3),
            "cpu_us_per_call": round(self.cpu_s / self.calls * 1e6, 1),
            "p50_ms": _pct(lat, 50),
            "p90_ms": _pct(lat, 90),
            "p99_ms": _pct(lat, 99),
            "p99.9_ms": _pct(lat, 99.9),
            "max_ms": round(lat[-1], 2) if lat else 0.0,
            "server_requests": self.server_requests,
            "load_x": round(self.server_requests / self.calls, 3),
            "overshoot_p99_ms": _pct(over, 99),
        }


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return round(values[min(len(values) - 1, int(len(values) * q / 100))], 2)


async def run_batch(call: Call, scenario: Scenario, calls: int, result: Result) -> None:
    queue = iter(range(calls))

    async def worker() -> None:
        for _ in queue:
            started = time.perf_counter()
            status = await call(scenario.path, scenario.timeout)
            elapsed = time.perf_counter() - started
            result.latencies_ms.append(elapsed * 1000)
            result.overshoot_ms.append(max(0.0, elapsed - scenario.timeout) * 1000)
            if status != 200:
                result.errors += 1

    await asyncio.gather(*(worker() for _ in range(scenario.concurrency)))
    result.calls += calls


async def server_count(session: aiohttp.ClientSession, base: str, endpoint: str) -> int:
    async with session.get(base + "counters") as response:
        return int((await response.json()).get(endpoint, 0))


async def run_all(base: str, rounds: int, scale: float, only: set[str] | None) -> list[Result]:
    import httpx

    results: list[Result] = []
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session, httpx.AsyncClient(limits=limits) as hx:
        control = aiohttp.ClientSession()
        try:
            variants = {name: factory(session, hx, base) for name, factory in VARIANTS.items()}
            for scenario in SCENARIOS:
                if only and scenario.name not in only:
                    continue
                per_variant = {name: Result(scenario.name, name) for name in variants}
                per_round = max(1, int(scenario.calls * scale) // rounds)
                for call in variants.values():  # warm-up: connections, caches
                    await run_batch(call, scenario, min(50, per_round), Result("", ""))
                for _ in range(rounds):
                    for name, call in variants.items():
                        result = per_variant[name]
                        before = await server_count(control, base, scenario.endpoint)
                        cpu, wall = time.process_time(), time.perf_counter()
                        await run_batch(call, scenario, per_round, result)
                        result.cpu_s += time.process_time() - cpu
                        result.wall_s += time.perf_counter() - wall
                        await asyncio.sleep(0.35)  # let cancelled losers reach the server's counter
                        result.server_requests += await server_count(control, base, scenario.endpoint) - before
                results.extend(per_variant.values())
                print(f"  done: {scenario.name}", file=sys.stderr, flush=True)
        finally:
            await control.close()
    return results


def print_table(rows: list[dict[str, float | int | str]]) -> str:
    columns = [
        "scenario",
        "variant",
        "calls",
        "errors",
        "wall_s",
        "cpu_us_per_call",
        "cpu_x",
        "p50_ms",
        "p90_ms",
        "p99_ms",
        "p99.9_ms",
        "max_ms",
        "server_requests",
        "load_x",
        "overshoot_p99_ms",
    ]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def add_ratios(rows: list[dict[str, float | int | str]]) -> None:
    raw = {row["scenario"]: row["cpu_us_per_call"] for row in rows if row["variant"] == "raw aiohttp"}
    for row in rows:
        base = float(raw.get(row["scenario"], 0) or 0)
        row["cpu_x"] = round(float(row["cpu_us_per_call"]) / base, 2) if base else ""


def plot_cdf(results: list[Result], scenario: str, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    chosen = [result for result in results if result.scenario == scenario and result.latencies_ms]
    if not chosen:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for result in chosen:
        lat = sorted(result.latencies_ms)
        ax.plot(lat, [(i + 1) / len(lat) for i in range(len(lat))], label=result.variant)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of calls")
    ax.set_title(f"Latency CDF: {scenario}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def pinned_cores() -> tuple[Callable[[], None], Callable[[], None] | None]:
    """Pin the client to the first core and the server to the second, when there are two: the
    two processes then never take turns on one core, which otherwise shows up as CPU noise."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cores) < 2:
        return (lambda: None), None
    return (lambda: os.sched_setaffinity(0, {cores[0]})), (lambda: os.sched_setaffinity(0, {cores[1]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the calls (a smoke test)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument(
        "--loop",
        choices=["asyncio", "uvloop"],
        default="asyncio",
        help="the client's event loop (the server's is asyncio)",
    )
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="leave the objects of the imports in the collector (gen-2 pauses of 20-30 ms show in the tails)",
    )
    args = parser.parse_args()
    _quiet_structlog()
    if not args.no_gc_freeze:
        # What long-running services do after start-up: the imports' objects never die, and a
        # gen-2 collection walking them pauses the loop 20-30 ms, which then shows up as tail
        # latency of whichever variant happens to be running. Frozen for all variants alike.
        gc.freeze()
    logging.getLogger("aio_request").setLevel(logging.CRITICAL)  # it logs every timeout it sees
    client_core, server_core = pinned_cores()
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.server", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=server_core,
    )
    client_core()
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        base = f"http://127.0.0.1:{port}/"
        started = time.perf_counter()
        work = run_all(base, args.rounds, 0.1 if args.quick else 1.0, set(args.only or []))
        if args.loop == "uvloop":
            import uvloop

            results = uvloop.run(work)
        else:
            results = asyncio.run(work)
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(10)
    rows = [r.summary() for r in results]
    add_ratios(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "loop": args.loop,
        "command": "python -m benchmarks.run"
        + (" --quick" if args.quick else "")
        + (f" --loop {args.loop}" if args.loop != "asyncio" else "")
        + (" --no-gc-freeze" if args.no_gc_freeze else ""),
        "seconds": round(elapsed, 1),
    }
    suffix = "" if args.loop == "asyncio" else f"-{args.loop}"
    (args.out / f"latest{suffix}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    plotted = plot_cdf(results, "tail c=8", args.out / f"tail_cdf{suffix}.png")
    print(json.dumps(meta))
    print(print_table(rows))
    if plotted:
        print(f"CDF written to {args.out / 'tail_cdf.png'}")


if __name__ == "__main__":
    main()
