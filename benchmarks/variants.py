"""The clients under test. Each variant makes one call and reports the status (or -1 on error).

A variant is built once per run from a shared aiohttp session and httpx client, so connection
pooling is the same for all of them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

import aio_pipeline as ap

Call = Callable[[str, float], Awaitable[int]]
Factory = Callable[[aiohttp.ClientSession, Any, str], Call]


def raw_aiohttp(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
    async def call(path: str, timeout: float) -> int:
        try:
            async with session.get(base + path, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError):
            return -1

    return call


def raw_httpx(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
    import httpx

    async def call(path: str, timeout: float) -> int:
        try:
            response = await httpx_client.get(base + path, timeout=timeout)
            return int(response.status_code)
        except httpx.HTTPError:
            return -1

    return call


def pipeline_call(pipeline: ap.Pipeline, base: str) -> Call:
    client = ap.Client(base, pipeline)

    async def call(path: str, timeout: float) -> int:
        try:
            async with client.request(ap.get(path), deadline=ap.Deadline.from_timeout(timeout)) as response:
                return response.status
        except ap.PipelineError:
            return -1

    return call


def pipeline_bare(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
    """The core alone: Client + Pipeline + AioHttpTransport, no middlewares."""
    return pipeline_call(ap.Pipeline(ap.AioHttpTransport(session)), base)


def _quiet_structlog() -> None:
    """Logging present at INFO, as in production, but rendered into /dev/null: the cost of
    building and rendering each event is measured, the terminal is spared."""
    import structlog

    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the benchmark process
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sink),
        cache_logger_on_first_use=True,
    )


def _breaker() -> ap.DefaultCircuitBreaker[str, Any]:
    # Present and sampling every attempt, but never opening: the benchmark measures its cost.
    return ap.DefaultCircuitBreaker[str, Any](
        break_duration=1.0, sampling_duration=10.0, minimum_throughput=1_000_000, failure_threshold=1.0
    )


def _setup(
    session: aiohttp.ClientSession,
    base: str,
    strategy: Any,
    budget: ap.RetryBudget | None = None,
    *,
    log: bool = False,
) -> ap.Client:
    """The full default stack: deadline, priority, metrics (a private Prometheus registry), a
    circuit breaker and system headers around ``strategy``; with ``log``, ``ClientLog()`` at its
    default configuration too."""
    from prometheus_client import CollectorRegistry

    return ap.setup(
        transport=ap.AioHttpTransport(session),
        endpoint=base,
        safe_method_strategy=strategy,
        circuit_breaker=_breaker(),
        metrics_provider=ap.PrometheusMetricsProvider(registry=CollectorRegistry()),
        call_middlewares=[ap.ClientLog()] if log else [],
        retry_budget=budget,
    )


def facade_call(client: ap.Client) -> Call:
    async def call(path: str, timeout: float) -> int:
        async with client.request(ap.get(path), deadline=ap.Deadline.from_timeout(timeout)) as response:
            return response.status

    return call


def pipeline_single(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
    """The full default stack with a single attempt."""
    return facade_call(_setup(session, base, ap.single_attempt_strategy()))


def pipeline_native(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
    """The same stack assembled by hand with ``Pipeline``."""
    from prometheus_client import CollectorRegistry

    from aio_pipeline.middlewares.circuit_breaker import CircuitBreakerMiddleware
    from aio_pipeline.middlewares.deadline import ClientDeadline
    from aio_pipeline.middlewares.priority import ClientPriority
    from aio_pipeline.middlewares.strategy import SingleAttempt
    from aio_pipeline.middlewares.wire import SystemHeaders

    metrics = ap.PrometheusMetricsProvider(registry=CollectorRegistry())
    stack = [
        metrics.client_call_middleware(),
        ClientDeadline(),
        ClientPriority(),
        SingleAttempt(),
        metrics.client_attempt_middleware(),
        CircuitBreakerMiddleware(_breaker()),
        SystemHeaders(),
    ]
    return pipeline_call(ap.Pipeline(ap.AioHttpTransport(session), stack), base)


def pipeline_logged(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
    """The full default stack with ``ClientLog()`` at its default configuration."""
    return facade_call(_setup(session, base, ap.single_attempt_strategy(), log=True))


def pipeline_retry(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
    return facade_call(_setup(session, base, ap.sequential_strategy(attempts_count=3)))


def pipeline_retry_40(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
    """Retry with the client's budget raised from 20% to 40% of calls (a 30% failure rate
    needs about 39% extra attempts for 97% success)."""
    budget = ap.RetryBudget(ratio=0.4)
    return facade_call(_setup(session, base, ap.sequential_strategy(attempts_count=3), budget))


def pipeline_hedge(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
    """Hedging at a fixed 10 ms, its extra load capped at 10% of calls (+1/s) by ``hedge_budget``."""
    strategy = ap.ParallelStrategy(
        attempts_count=3,
        delays_provider=ap.constant_delays(delay=0.01),
        hedge_budget=ap.RetryBudget(ratio=0.1, min_per_second=1.0),
    )
    return facade_call(_setup(session, base, strategy))


def pipeline_adaptive(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
    """Hedging at the p90 of recent latency (per method and route), no sooner than 2 ms.

    Not the provider's default p95: on this endpoint 5% of calls are slow, so the p95 sits on
    the boundary, and the hedged calls' own "at least this slow" samples push it up the tail
    (measured: a 15.7 ms delay and a 22 ms p99, against 4.7 ms and 13 ms at p90).
    """
    delays = ap.PercentileBasedRequestAttemptDelaysProvider(percentile=0.9, min_delay_seconds=0.002)
    return facade_call(_setup(session, base, ap.parallel_strategy(attempts_count=2, delays_provider=delays)))


def _aio_request(strategy_name: str) -> Factory | None:
    """aio-request's own client, when it is installed (it is not a dependency)."""
    try:
        import aio_request
    except ImportError:
        return None

    def factory(session: aiohttp.ClientSession, httpx_client: Any, base: str) -> Call:
        client = aio_request.setup(transport=aio_request.AioHttpTransport(session), endpoint=base)
        if strategy_name == "single":
            strategy = aio_request.single_attempt_strategy()
        else:
            delays = aio_request.constant_delays(delay=0.01)
            strategy = aio_request.parallel_strategy(attempts_count=3, delays_provider=delays)

        async def call(path: str, timeout: float) -> int:
            deadline = aio_request.Deadline.from_timeout(timeout)
            async with client.request(aio_request.get(path), deadline=deadline, strategy=strategy) as response:
                return int(response.status)

        return call

    return factory


VARIANTS: dict[str, Factory] = {
    "raw aiohttp": raw_aiohttp,
    "raw httpx": raw_httpx,
    "pipeline (core only)": pipeline_bare,
    "pipeline single": pipeline_single,
    "pipeline native": pipeline_native,
    "pipeline single + ClientLog": pipeline_logged,
    "pipeline retry": pipeline_retry,
    "pipeline retry, 40% budget": pipeline_retry_40,
    "pipeline hedge 10ms": pipeline_hedge,
    "pipeline adaptive hedge": pipeline_adaptive,
}
for _name, _factory in (
    ("aio-request single", _aio_request("single")),
    ("aio-request parallel", _aio_request("parallel")),
):
    if _factory is not None:
        VARIANTS[_name] = _factory
