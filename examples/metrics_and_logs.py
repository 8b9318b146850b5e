"""Metrics and logs: a service with a real ``/metrics`` endpoint, a client, and what they record.

Run: python examples/metrics_and_logs.py  (exits 0; needs aio-pipeline[prometheus,structlog])

The server runs the standard stack with a Prometheus provider and ``ServerLog`` outermost; its
``/users/{id}`` handler logs a line of its own, which carries the caller's name, priority and
deadline bound by ``ServerLog``. The client is ``setup()``'s pipeline with the same provider and
``ClientLog``. After a few calls (one retried 503, one refused for lack of time, one unknown
path) the demo scrapes ``/metrics`` over HTTP and prints some ``aio_pipeline_*`` samples.
The library never configures structlog: the demo does, as an application would.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

import aio_pipeline as ap
from aio_pipeline import aiohttp_middleware_factory
from aio_pipeline.middlewares.log import ClientLog, ServerLog
from aio_pipeline.middlewares.prometheus import PrometheusMetricsProvider

HOST = "127.0.0.1"
CALLER = {"X-Service-Name": "checkout"}
REGISTRY = web.AppKey("registry", CollectorRegistry)


def configure_logging() -> None:
    """The application's choice: key=value lines on stdout, request-scoped values merged in."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.KeyValueRenderer(key_order=["event", "level"], drop_missing=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(),
    )


def make_app(provider: PrometheusMetricsProvider, registry: CollectorRegistry) -> web.Application:
    flaky_calls = [0]
    log = structlog.get_logger("orders")

    async def user(request: web.Request) -> web.Response:
        log.info("looking up user", user_id=request.match_info["id"])  # carries client, priority, deadline
        return web.json_response({"id": request.match_info["id"]})

    async def flaky(request: web.Request) -> web.Response:
        flaky_calls[0] += 1
        return web.Response(status=503 if flaky_calls[0] == 1 else 200, text="flaky")

    async def metrics(request: web.Request) -> web.Response:
        body = generate_latest(request.app[REGISTRY])
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    stack = aiohttp_middleware_factory(metrics_provider=provider, outer_middlewares=[ServerLog()], timeout=5)
    app = web.Application(middlewares=[stack])
    app[REGISTRY] = registry
    app.router.add_get("/users/{id}", user)
    app.router.add_get("/flaky", flaky)
    app.router.add_get("/metrics", metrics)
    return app


async def main() -> None:
    configure_logging()
    registry = CollectorRegistry()  # the default registry works too: PROMETHEUS_METRICS_PROVIDER
    provider = PrometheusMetricsProvider(registry=registry)
    runner = web.AppRunner(make_app(provider, registry))
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://{HOST}:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            client = ap.setup(
                transport=ap.AioHttpTransport(session),
                endpoint=f"{base}/",
                metrics_provider=provider,
                call_middlewares=[ClientLog(every_call=True)],  # an access log of calls: successes too
                safe_method_strategy=ap.sequential_strategy(
                    attempts_count=3, delays_provider=ap.constant_delays(delay=0.05)
                ),
            )
            print("--- logs (client and server, as the application renders them)")
            for user_id in ("1", "2"):
                async with client.request(ap.get("users/{id}", path_parameters={"id": user_id}, headers=CALLER)):
                    pass
            async with client.request(ap.get("flaky", headers=CALLER), priority=ap.Priority.HIGH) as response:
                assert response.status == 200  # a 503, then a retry
            async with session.get(f"{base}/users/3", headers={"X-Request-Timeout": "0"}) as response:
                assert response.status == 408  # no time left: refused without running the handler
            async with session.get(f"{base}/wp-login.php") as response:
                assert response.status == 404

            print("--- a Prometheus scrape of /metrics (aio_pipeline_*_count samples)")
            async with session.get(f"{base}/metrics") as response:
                scrape = await response.text()
            for line in scrape.splitlines():
                if line.startswith("aio_pipeline_") and ("_count{" in line or "_total{" in line):
                    print(line)
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
