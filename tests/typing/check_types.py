"""Checked by ``mypy --strict`` (tox -e type), not run: the public API types as users see them."""

from __future__ import annotations

from typing import assert_type

import aiohttp

import aio_pipeline as ap
from aio_pipeline import Handler, Middleware, Request, Response


async def add_auth(request: Request, call_next: Handler[Request, Response], /) -> Response:
    return await call_next(request.update_headers({"Authorization": "Bearer token"}))


class CountAttempts:
    """A middleware object: anything with a matching async ``__call__`` is a middleware."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, request: Request, call_next: Handler[Request, Response], /) -> Response:
        self.count += 1
        return await call_next(request)


async def generic_compose() -> None:
    async def double(value: int, call_next: Handler[int, str], /) -> str:
        return await call_next(value * 2)

    async def show(value: int) -> str:
        return str(value)

    handler = ap.compose([double], show)
    assert_type(await handler(21), str)


async def client_usage(session: aiohttp.ClientSession) -> None:
    middlewares: list[Middleware[Request, Response]] = [add_auth, CountAttempts()]
    pipeline = ap.Pipeline(ap.AioHttpTransport(session), middlewares)
    client = ap.Client("http://127.0.0.1:8080/", pipeline)
    async with client.request(
        ap.get("users/{id}", path_parameters={"id": 1}), deadline=ap.Deadline.from_timeout(5)
    ) as response:
        assert_type(response, Response)
        assert_type(response.status, int)
        assert_type(await response.read(), bytes)
    assert_type(ap.post_json("users", {"name": "a"}), Request)
    assert_type(min(ap.Deadline.from_timeout(1), ap.Deadline.from_timeout(2)), ap.Deadline)
    assert_type(ap.Priority.parse("high"), ap.Priority | None)
