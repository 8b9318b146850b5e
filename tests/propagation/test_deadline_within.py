"""``within``: the one place that tells our deadline's expiry from anyone else's timeout."""

from __future__ import annotations

import asyncio

import pytest

from aio_pipeline import DeadlineExceededError
from aio_pipeline.propagation import within

pytestmark = [pytest.mark.asyncio, pytest.mark.looptime]


async def test_its_own_expiry_is_a_deadline_error_carrying_the_request() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeadlineExceededError, match=r"^no response within 2\.000s$") as raised:
        async with within.after(2, request="the request", message="no response"):
            await asyncio.sleep(10)
    assert raised.value.request == "the request"
    assert isinstance(raised.value.__cause__, TimeoutError)
    assert loop.time() - started == pytest.approx(2)


async def test_a_timeout_raised_inside_goes_through_as_it_is() -> None:
    class LibraryTimeout(TimeoutError):
        pass

    with pytest.raises(LibraryTimeout):
        async with within.after(5, request=None, message="ours"):
            raise LibraryTimeout("the library's own")


async def test_an_inner_deadline_error_goes_through_an_outer_scope() -> None:
    loop = asyncio.get_running_loop()

    async def nested() -> None:
        async with (
            within(loop.time() + 2, request=None, message="outer"),
            within(loop.time() + 1, request=None, message="inner"),
        ):
            await asyncio.sleep(5)

    with pytest.raises(DeadlineExceededError, match=r"^inner$"):
        await nested()
    assert loop.time() == pytest.approx(1)  # and the outer one did not wait for its own


async def test_no_deadline_never_expires_and_the_result_passes() -> None:
    loop = asyncio.get_running_loop()
    async with within(None, request=None, message="never"):
        await asyncio.sleep(3600)
    async with within.after(None, request=None, message="never"):
        await asyncio.sleep(1)
    assert loop.time() >= 3601
