"""What the pipeline itself costs per call, without a network: client CPU microseconds per call
through ``setup()``'s stack over a transport that answers at once, layer by layer.

    python -m benchmarks.overhead

Steadier than the end-to-end run (no sockets, no server process): use it to see what each
concern adds, and the end-to-end run (``benchmarks.run``) for ratios against raw aiohttp.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aio_pipeline as ap
from aio_pipeline import Request, Response, Transport

from .variants import _quiet_structlog

CALLS = 20_000


class Immediate(Transport):
    """Answers 200 at once, after building the URL as a real transport would."""

    async def send(self, endpoint: str | None, request: Request, timeout: float | None) -> Response:
        request.absolute_url(endpoint)
        return Response(200)


def stacks() -> dict[str, ap.Client]:
    from prometheus_client import CollectorRegistry

    def breaker() -> ap.DefaultCircuitBreaker[str, Any]:
        return ap.DefaultCircuitBreaker(
            break_duration=1.0, sampling_duration=10.0, minimum_throughput=10**9, failure_threshold=1.0
        )

    def facade(**options: Any) -> ap.Client:
        return ap.setup(
            transport=Immediate(),
            endpoint="http://127.0.0.1:1/",
            safe_method_strategy=ap.single_attempt_strategy(),
            **options,
        )

    return {
        "Client + Pipeline, no middleware": ap.Client("http://127.0.0.1:1/", ap.Pipeline(Immediate())),
        "setup(): deadline, priority, strategy, wire": facade(),
        "+ circuit breaker": facade(circuit_breaker=breaker()),
        "+ Prometheus metrics": facade(
            circuit_breaker=breaker(), metrics_provider=ap.PrometheusMetricsProvider(registry=CollectorRegistry())
        ),
        "+ ClientLog (JSON at INFO, to /dev/null)": facade(
            circuit_breaker=breaker(),
            metrics_provider=ap.PrometheusMetricsProvider(registry=CollectorRegistry()),
            call_middlewares=[ap.ClientLog()],
        ),
    }


async def cost(client: ap.Client) -> float:
    """Microseconds of CPU per call; the best of three rounds (noise only ever adds)."""
    rounds = []
    for _ in range(3):
        started = time.process_time()
        for _ in range(CALLS):
            async with client.request(ap.get("fast"), deadline=ap.Deadline.from_timeout(5)):
                pass
        rounds.append((time.process_time() - started) / CALLS * 1e6)
    return min(rounds)


async def main() -> None:
    _quiet_structlog()
    print("| stack | CPU µs per call |\n|---|---|")
    for name, client in stacks().items():
        print(f"| {name} | {await cost(client):.1f} |")


if __name__ == "__main__":
    asyncio.run(main())
