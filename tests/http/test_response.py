"""Response: body access, JSON rules, status helpers, idempotent close."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from aio_pipeline import ContentTypeError, Response


@pytest.mark.asyncio
async def test_text_uses_the_declared_charset() -> None:
    response = Response(200, {"Content-Type": "text/plain; charset=latin-1"}, "é".encode("latin-1"))
    assert await response.text() == "é"
    assert await response.text("utf-8") == "\ufffd"


@pytest.mark.asyncio
async def test_unknown_charset_falls_back_to_utf8() -> None:
    response = Response(200, {"Content-Type": "text/plain; charset=nope"}, "é".encode())
    assert await response.text() == "é"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "content_type", ["application/json", "application/problem+json", "APPLICATION/JSON; charset=utf-8"]
)
async def test_json_accepts_json_media_types(content_type: str) -> None:
    assert await Response(200, {"Content-Type": content_type}, b'{"a": 1}').json() == {"a": 1}


@pytest.mark.asyncio
@pytest.mark.parametrize("body", [b"", b"  \n"])
async def test_json_of_an_empty_body_is_none(body: bytes) -> None:
    assert await Response(204, {}, body).json() is None


@pytest.mark.asyncio
async def test_json_with_a_wrong_content_type_is_a_clear_error() -> None:
    response = Response(502, {"Content-Type": "text/html"}, b"<html>bad gateway</html>")
    with pytest.raises(ContentTypeError, match=r"text/html.*content_type=None"):
        await response.json()
    assert await Response(200, {}, b"[1]").json(content_type=None) == [1]


@pytest.mark.parametrize(
    ("status", "flags"),
    [(200, "s"), (204, "s"), (302, "r"), (404, "c"), (429, "c"), (500, "e"), (503, "e")],
)
def test_status_helpers(status: int, flags: str) -> None:
    response = Response(status)
    assert response.is_successful() == (flags == "s")
    assert response.is_redirect() == (flags == "r")
    assert response.is_client_error() == (flags == "c")
    assert response.is_server_error() == (flags == "e")


@pytest.mark.asyncio
async def test_close_is_idempotent_and_runs_the_closer_once() -> None:
    closes: list[int] = []

    async def on_close() -> None:
        closes.append(1)

    async with Response(200, on_close=on_close) as response:
        assert not response.closed
    await response.close()
    assert response.closed
    assert closes == [1]


@pytest.mark.asyncio
async def test_lazy_reader_is_called_once() -> None:
    reads: list[int] = []

    async def reader() -> bytes:
        reads.append(1)
        return b"body"

    response = Response(200, reader=reader)
    assert await response.read() == b"body"
    assert await response.text() == "body"
    assert reads == [1]


# --- regressions (issue 13) ----------------------------------------------------------------------


async def _no_body_reader() -> bytes:
    raise AssertionError("a closed response must not read")


def _buffered() -> Response:
    return Response(200, {}, b"body")


def _unbuffered() -> Response:
    return Response(200, reader=_no_body_reader)


@pytest.mark.asyncio
@pytest.mark.parametrize("make", [_buffered, _unbuffered], ids=["buffered", "unbuffered"])
async def test_minor_a_first_read_after_close_says_the_response_was_closed(make: Callable[[], Response]) -> None:
    response = make()
    await response.close()
    for read in (response.read, response.text, response.json):
        with pytest.raises(RuntimeError, match=r"<Response 200 > was closed before its body was read"):
            await read()


@pytest.mark.asyncio
async def test_minor_a_body_read_before_close_is_kept_after_it() -> None:
    reads: list[int] = []

    async def reader() -> bytes:
        reads.append(1)
        return b'{"a": 1}'

    for response in (Response(200, {"Content-Type": "application/json"}, b'{"a": 1}'), Response(200, reader=reader)):
        assert await response.read() == b'{"a": 1}'
        await response.close()
        assert await response.read() == b'{"a": 1}'
        assert await response.json(content_type=None) == {"a": 1}
    assert reads == [1]


@pytest.mark.asyncio
async def test_minor_closing_while_the_body_is_read_says_so() -> None:
    reading = asyncio.Event()
    closed = asyncio.Event()

    async def reader() -> bytes:
        reading.set()
        await closed.wait()
        raise ConnectionResetError("the connection went away")  # what a released connection gives

    response = Response(200, reader=reader)
    read = asyncio.create_task(response.read())
    await reading.wait()
    await response.close()
    closed.set()
    with pytest.raises(RuntimeError, match="closed while its body was being read"):
        await read


@pytest.mark.asyncio
async def test_also_check_01_a_close_cut_short_by_cancellation_still_releases() -> None:
    """``on_close`` runs to its end although the task closing the response is cancelled during it;
    the cancellation goes on afterwards."""
    releasing, may_finish = asyncio.Event(), asyncio.Event()
    released: list[str] = []

    async def on_close() -> None:
        releasing.set()
        await may_finish.wait()  # e.g. a connection pool's lock
        released.append("released")

    response = Response(200, on_close=on_close)
    closer = asyncio.create_task(response.close())
    await releasing.wait()
    closer.cancel()
    second_closer = asyncio.create_task(response.close())
    await asyncio.wait([closer, second_closer], timeout=0)  # both now wait for the one release
    assert not closer.done() and not second_closer.done()
    may_finish.set()

    with pytest.raises(asyncio.CancelledError):
        await closer
    await second_closer
    assert released == ["released"]
    assert response.closed
    await response.close()  # nothing more to do
    assert released == ["released"]
