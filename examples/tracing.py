"""Tracing two services: one span per call, one per attempt, the callee's span under the attempt.

Run: python examples/tracing.py  (needs the otel extra; exits 0; takes about half a second)

    this script ──▶ orders (A) ──▶ inventory (B)

Both services run the standard server middleware with ``tracing=True``; the script and the
orders service call out through a client stack with ``ClientTracing``. Inventory answers its
first stock request with a 503 (orders' call is retried) and its first price request slowly
(orders' call is hedged, and the hedge wins). The OpenTelemetry SDK is configured as the global
tracer provider, with an in-memory exporter, and the span tree of each trace is printed.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import aio_pipeline as ap
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.hedging import ParallelStrategy
from aio_pipeline.middlewares.priority import ClientPriority
from aio_pipeline.middlewares.retry import SequentialStrategy
from aio_pipeline.middlewares.strategy import PerCallStrategy
from aio_pipeline.middlewares.tracing import ClientTracing
from aio_pipeline.middlewares.wire import SystemHeaders

HOST = "127.0.0.1"
INVENTORY = web.AppKey("inventory", ap.Client)
HITS = web.AppKey("hits", Counter[str])
SLOW_SECONDS = 0.3  # inventory's first price lookup; the hedge goes after 0.05 s


def client_stack(tracing: ClientTracing) -> list[Any]:
    """The client stack with tracing, as ``setup(tracing=True)`` places it."""
    return [
        tracing,
        ClientDeadline(timeout=5),
        ClientPriority(),
        PerCallStrategy(event_hooks=[tracing.client_event_hook()]),
        tracing.attempts(),
        SystemHeaders(),
    ]


async def stock(request: web.Request) -> web.Response:
    hits = request.app[HITS]
    hits["stock"] += 1
    return web.Response(status=503 if hits["stock"] == 1 else 200, text="12")


async def price(request: web.Request) -> web.Response:
    hits = request.app[HITS]
    hits["price"] += 1
    if hits["price"] == 1:
        await asyncio.sleep(SLOW_SECONDS)
    return web.Response(text="9.99")


async def order(request: web.Request) -> web.Response:
    retry = SequentialStrategy(attempts_count=3, delays_provider=ap.constant_delays(delay=0.02))
    async with request.app[INVENTORY].request(
        ap.get("stock/{sku}", path_parameters={"sku": "42"}), strategy=retry
    ) as r:
        return web.Response(text=f"in stock: {await r.text()}")


async def quote(request: web.Request) -> web.Response:
    hedge = ParallelStrategy(attempts_count=2, delays_provider=ap.constant_delays(delay=0.05))
    async with request.app[INVENTORY].request(
        ap.get("price/{sku}", path_parameters={"sku": "42"}), strategy=hedge
    ) as r:
        return web.Response(text=f"price: {await r.text()}")


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    try:
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        yield f"http://{HOST}:{port}"
    finally:
        await runner.cleanup()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def describe(span: ReadableSpan, services: dict[int, str]) -> str:
    """One line: name, kind, what it is (the call, which attempt, which service), the outcome."""
    attributes = span.attributes or {}
    milliseconds = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
    if span.kind.name == "SERVER":
        role = services.get(int(str(attributes.get("server.port", 0))), "?")
    elif "aio_pipeline.attempt.kind" in attributes:
        role = f"attempt {attributes['aio_pipeline.attempt']} ({attributes['aio_pipeline.attempt.kind']})"
    else:
        role = "call"
    parts = [span.name, span.kind.name, role]
    if "http.response.status_code" in attributes:
        parts.append(str(attributes["http.response.status_code"]))
    if "aio_pipeline.outcome" in attributes:
        parts.append(str(attributes["aio_pipeline.outcome"]))
    if span.status.status_code.name == "ERROR":
        parts.append("ERROR")
    parts.append(f"{milliseconds:.0f} ms")
    parts.extend(f"event: {event.name.rsplit('.', 1)[1]}" for event in span.events)
    return "  ".join(parts)


def print_tree(spans: list[ReadableSpan], services: dict[int, str]) -> None:
    children: dict[int | None, list[ReadableSpan]] = defaultdict(list)
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        children[span.parent.span_id if span.parent else None].append(span)

    def walk(span: ReadableSpan, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└── " if last else "├── ")
        print(f"{prefix}{branch}{describe(span, services)}")
        below = children.get(span.context.span_id, [])
        for index, child in enumerate(below):
            walk(child, prefix + ("" if root else ("    " if last else "│   ")), index == len(below) - 1, False)

    for root in children[None]:
        walk(root, "", True, True)


async def main() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # tracing=True and ClientTracing() use the global provider

    async with aiohttp.ClientSession() as session:
        tracing = ClientTracing()
        inventory_app = web.Application(middlewares=[ap.aiohttp_middleware_factory(tracing=True)])
        inventory_app[HITS] = Counter()
        inventory_app.router.add_get("/stock/{sku}", stock)
        inventory_app.router.add_get("/price/{sku}", price)
        async with serve(inventory_app) as inventory_url:
            orders_app = web.Application(middlewares=[ap.aiohttp_middleware_factory(tracing=True)])
            orders_app.router.add_get("/orders/{id}", order)
            orders_app.router.add_get("/quotes/{id}", quote)
            inventory = ap.Pipeline(ap.AioHttpTransport(session), client_stack(tracing))
            orders_app[INVENTORY] = ap.Client(inventory_url, inventory)
            async with serve(orders_app) as orders_url:
                services = {port_of(inventory_url): "inventory (B)", port_of(orders_url): "orders (A)"}
                client = ap.Client(orders_url, ap.Pipeline(ap.AioHttpTransport(session), client_stack(tracing)))
                for path in ("orders/{id}", "quotes/{id}"):
                    async with client.request(ap.get(path, path_parameters={"id": "7"})) as response:
                        print(f"{path}: {response.status} {await response.text()}")
                await asyncio.sleep(SLOW_SECONDS)  # inventory finishes the slow lookup the hedge beat

    spans = list(exporter.get_finished_spans())
    by_trace: dict[int, list[ReadableSpan]] = defaultdict(list)
    for span in spans:
        by_trace[span.context.trace_id].append(span)
    for index, trace_spans in enumerate(sorted(by_trace.values(), key=lambda s: min(x.start_time or 0 for x in s))):
        print(f"\ntrace {index + 1}: {trace_spans[0].context.trace_id:032x}")
        print_tree(trace_spans, services)
    assert len(by_trace) == 2, "one trace per call"
    kinds = Counter(span.kind.name for span in spans)
    assert kinds == {"INTERNAL": 4, "CLIENT": 6, "SERVER": 6}, kinds
    provider.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
