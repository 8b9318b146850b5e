"""The clients under test. Each variant makes one call and reports the status (or -1 on error).

A variant is built once per run from a shared aiohttp session and httpx client, so connection
pooling is the same for all of them.
"""

from __future__ import annotations

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


VARIANTS: dict[str, Factory] = {
    "raw aiohttp": raw_aiohttp,
    "raw httpx": raw_httpx,
    "pipeline (core only)": pipeline_bare,
}
