"""Both real transports against real servers on 127.0.0.1.

Every test that takes ``transport`` runs once over aiohttp and once over httpx. Waits for a
deadline run on looptime's virtual loop clock, so they take no real time and do not depend on
the machine's speed.

Looptime fast-forwards to the next timer once the loop has polled idle ``noop_cycles`` times in
a row (42 polls, well under a millisecond). That is safe here because every server runs on the
test's own loop: loopback bytes reach the peer socket within the ``send()`` call, so the loop is
never idle while bytes are in flight (``test_answers_take_no_virtual_time`` checks it). A server
in another thread or process would break this: the clock would jump to the deadline while the
answer is still coming.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import test_utils, web

from aio_pipeline import (
    AioHttpTransport,
    Client,
    ConnectError,
    ContentTypeError,
    Deadline,
    DeadlineExceededError,
    InvalidRequestError,
    Pipeline,
    TooManyRedirectsError,
    Transport,
    TransportError,
    get,
    head,
    post,
    post_json,
    request,
)
from aio_pipeline.middlewares.retry import SequentialStrategy
from aio_pipeline.policy import constant_delays

if TYPE_CHECKING:
    from conftest import Respond, Server, StartRawServer

pytestmark = pytest.mark.asyncio

#: The attempt timeout of the tests that wait for a deadline, in virtual seconds.
TIMEOUT = 1.0
#: How far the virtual clock may be from the deadline when the attempt ends.
TOLERANCE = 0.005
#: The length of the redirect chain ``/redirect/{HOPS}`` -> ... -> ``/redirect/0``.
HOPS = 3


# --- what the raw servers do once they have read a request head ---------------------------------


async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # until the client gives up and hangs up


async def stall_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
    await reader.read()


async def truncate_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")  # then hang up


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close in order (FIN) without a word."""


async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def corrupt_gzip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 10\r\n\r\nnot gzip!!")


def acquired_connections(session: aiohttp.ClientSession) -> int:
    """Connections the session's connector has handed out and not yet got back.

    aiohttp has no public API for this, so it reads the connector's private ``_acquired``.
    """
    assert session.connector is not None
    return len(session.connector._acquired)


# --- methods, headers, bodies --------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_each_method_arrives_with_its_headers_and_body(transport: Transport, server: Server, method: str) -> None:
    body = f"body of a {method}".encode()
    outgoing = request(method, "echo", body, headers=[("X-Tag", "a"), ("X-Tag", "b")])

    async with await transport.send(server.base_url, outgoing, None) as response:
        assert response.status == 200
        assert await response.json() == {"method": method, "path": "/echo", "body": body.decode()}

    (seen,) = server.seen
    assert (seen.method, seen.body) == (method, body)
    assert seen.headers.getall("X-Tag") == ["a", "b"]


async def test_head_arrives_and_its_response_has_no_body(transport: Transport, server: Server) -> None:
    async with await transport.send(server.base_url, head("echo", headers={"X-Tag": "a"}), None) as response:
        assert response.status == 200
        assert int(response.headers["Content-Length"]) > 0  # the length a GET would have had
        assert await response.read() == b""

    (seen,) = server.seen
    assert seen.method == "HEAD"
    assert seen.headers["X-Tag"] == "a"


# --- URLs: path parameters, query parameters, the endpoint's path ------------------------------


@pytest.mark.parametrize("name", ["../../etc", "a?b=1", "..", ".", "a/b#c", "%2F"])
async def test_a_path_parameter_is_one_segment_whatever_it_holds(
    transport: Transport, server: Server, name: str
) -> None:
    async with await transport.send(server.base_url, get("files/{name}", path_parameters={"name": name}), None):
        pass

    (seen,) = server.seen
    assert seen.match_info == {"name": name}
    assert seen.query == []


async def test_a_non_ascii_path_is_percent_encoded(transport: Transport, server: Server) -> None:
    async with await transport.send(server.base_url, get("caf\u00e9/a b"), None) as response:
        assert response.status == 200

    (seen,) = server.seen
    assert seen.path == "/caf\u00e9/a b"


async def test_query_parameters_keep_repeats_and_order(transport: Transport, server: Server) -> None:
    outgoing = get("echo?first=0", query_parameters={"a": ["1", "2"], "b": "x y&z=é"})

    async with await transport.send(server.base_url, outgoing, None):
        pass

    (seen,) = server.seen
    assert seen.query == [("first", "0"), ("a", "1"), ("a", "2"), ("b", "x y&z=é")]


@pytest.mark.parametrize("endpoint_path", ["api/", "api"])
@pytest.mark.parametrize("path", ["users/1", "/users/1"])
async def test_a_relative_path_lands_under_the_endpoints_path(
    transport: Transport, server: Server, endpoint_path: str, path: str
) -> None:
    async with await transport.send(server.url(endpoint_path), get(path), None):
        pass

    (seen,) = server.seen
    assert seen.path == "/api/users/1"


async def test_an_absolute_url_ignores_the_endpoint(transport: Transport, server: Server) -> None:
    async with await transport.send(server.url("api/"), get(server.url("elsewhere")), None):
        pass

    (seen,) = server.seen
    assert seen.path == "/elsewhere"


# --- JSON ----------------------------------------------------------------------------------------


async def test_post_json_sends_the_document_with_one_content_type(transport: Transport, server: Server) -> None:
    document = {"name": "x", "values": [1, 2.5, None]}

    async with await transport.send(server.base_url, post_json("echo", document), None):
        pass

    (seen,) = server.seen
    assert json.loads(seen.body) == document
    assert seen.headers.getall("Content-Type") == ["application/json"]


async def test_a_callers_content_type_replaces_the_default(transport: Transport, server: Server) -> None:
    outgoing = post_json("echo", [], headers={"content-type": "application/vnd.api+json"})

    async with await transport.send(server.base_url, outgoing, None):
        pass

    (seen,) = server.seen
    assert seen.headers.getall("Content-Type") == ["application/vnd.api+json"]


async def test_json_of_an_empty_body_is_none(transport: Transport, server: Server) -> None:
    async with await transport.send(server.base_url, get("no-content"), None) as response:
        assert await response.json() is None


async def test_json_refuses_a_body_labelled_as_something_else(transport: Transport, server: Server) -> None:
    async with await transport.send(server.base_url, get("json-as-text"), None) as response:
        with pytest.raises(ContentTypeError, match="text/plain"):
            await response.json()
        assert await response.json(content_type=None) == {"ok": True}  # the body itself was fine


# --- redirects -----------------------------------------------------------------------------------


async def test_redirects_are_followed(transport: Transport, server: Server) -> None:
    async with await transport.send(server.base_url, get(f"redirect/{HOPS}"), None) as response:
        assert response.status == 200
        assert response.url == server.url("redirect/0")

    assert [seen.path for seen in server.seen] == [f"/redirect/{hops}" for hops in range(HOPS, -1, -1)]


async def test_without_allow_redirects_the_redirect_is_the_response(transport: Transport, server: Server) -> None:
    async with await transport.send(server.base_url, get(f"redirect/{HOPS}", allow_redirects=False), None) as response:
        assert response.is_redirect()
        assert response.headers["Location"] == f"/redirect/{HOPS - 1}"

    assert len(server.seen) == 1


async def test_more_redirects_than_max_redirects_raise(transport: Transport, server: Server) -> None:
    outgoing = get(f"redirect/{HOPS}", max_redirects=HOPS - 1)

    with pytest.raises(TooManyRedirectsError) as raised:
        await transport.send(server.base_url, outgoing, None)

    assert raised.value.request is outgoing


async def test_a_chain_of_exactly_max_redirects_is_followed(transport: Transport, server: Server) -> None:
    async with await transport.send(server.base_url, get(f"redirect/{HOPS}", max_redirects=HOPS), None) as response:
        assert response.status == 200

    assert len(server.seen) == HOPS + 1


async def test_max_redirects_zero_follows_none(transport: Transport, server: Server) -> None:
    with pytest.raises(TooManyRedirectsError):
        await transport.send(server.base_url, get(f"redirect/{HOPS}", max_redirects=0), None)

    assert len(server.seen) == 1


# --- network failures ----------------------------------------------------------------------------


async def test_a_refused_connection_raises_connect_error(transport: Transport, refused_port: str) -> None:
    outgoing = get("x")

    with pytest.raises(ConnectError) as raised:
        await transport.send(refused_port, outgoing, None)

    assert raised.value.request is outgoing


@pytest.mark.parametrize("respond", [hang_up, reset])
async def test_a_connection_dropped_after_the_request_raises_transport_error(
    transport: Transport, raw_server: StartRawServer, respond: Respond
) -> None:
    raw = await raw_server(respond)

    with pytest.raises(TransportError) as raised:
        await transport.send(raw.base_url, get("x"), None)

    assert not isinstance(raised.value, ConnectError)  # the request did leave: not safe to resend blindly
    assert raw.received


@pytest.mark.parametrize(
    ("transport", "method", "sends"),
    [
        # aiohttp resends an idempotent request once when the connection drops before any answer
        # (ClientSession._retry_connection, no public switch): one attempt of ours may reach the
        # server twice. README, "Transports", documents it; this test notices if it changes.
        ("aiohttp", "GET", 2),
        ("aiohttp", "POST", 1),
        pytest.param("httpx", "GET", 1, marks=pytest.mark.needs_extras),
        pytest.param("httpx", "POST", 1, marks=pytest.mark.needs_extras),
    ],
    indirect=["transport"],
)
async def test_a_dropped_connection_is_resent_only_by_aiohttp_and_only_when_idempotent(
    transport: Transport, raw_server: StartRawServer, method: str, sends: int
) -> None:
    raw = await raw_server(hang_up)

    with pytest.raises(TransportError):
        await transport.send(raw.base_url, request(method, "x"), None)

    assert len(raw.received) == sends


async def test_a_truncated_body_raises_transport_error(transport: Transport, raw_server: StartRawServer) -> None:
    raw = await raw_server(truncate_body)

    with pytest.raises(TransportError):
        await transport.send(raw.base_url, get("x"), None)


async def test_an_undecodable_body_raises_transport_error(transport: Transport, raw_server: StartRawServer) -> None:
    raw = await raw_server(corrupt_gzip)

    with pytest.raises(TransportError):
        await transport.send(raw.base_url, get("x"), None)


# --- deadlines, on the virtual clock -------------------------------------------------------------


@pytest.mark.looptime
@pytest.mark.parametrize("respond", [never_answer, stall_body])
async def test_a_silent_server_runs_into_the_deadline(
    transport: Transport, raw_server: StartRawServer, respond: Respond
) -> None:
    raw = await raw_server(respond)
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(DeadlineExceededError):
        await transport.send(raw.base_url, get("x"), TIMEOUT)

    assert loop.time() - started == pytest.approx(TIMEOUT, abs=TOLERANCE)
    assert len(raw.received) == 1  # it was the answer that was late, not the connection


@pytest.mark.looptime
async def test_answers_take_no_virtual_time(transport: Transport, server: Server) -> None:
    """Looptime must not move the clock while loopback I/O is in flight, or the deadline fires."""
    loop = asyncio.get_running_loop()
    started = loop.time()

    async with await transport.send(server.base_url, get(f"redirect/{HOPS}"), TIMEOUT) as response:
        assert response.status == 200

    assert loop.time() == started
    assert len(server.seen) == HOPS + 1


# --- through Pipeline and Client -----------------------------------------------------------------


async def test_client_request_sends_and_closes_the_response(transport: Transport, server: Server) -> None:
    client = Client(server.url("api/"), Pipeline(transport))

    async with client.request(get("x"), deadline=Deadline.from_timeout(5)) as response:
        assert response.status == 200
        assert not response.closed

    assert response.closed
    assert [seen.path for seen in server.seen] == ["/api/x"]


async def test_an_expired_deadline_fails_without_touching_the_network(transport: Transport, server: Server) -> None:
    client = Client(server.base_url, Pipeline(transport))

    with pytest.raises(DeadlineExceededError):
        async with client.request(get("x"), deadline=Deadline.from_timeout(0)):
            pytest.fail("an expired deadline must not send")

    assert server.seen == []


@pytest.mark.looptime
async def test_the_pipeline_bounds_the_attempt_by_the_deadline(
    transport: Transport, raw_server: StartRawServer
) -> None:
    raw = await raw_server(never_answer)
    client = Client(raw.base_url, Pipeline(transport))
    deadline = Deadline.from_timeout(TIMEOUT)

    with pytest.raises(DeadlineExceededError):
        async with client.request(get("x"), deadline=deadline):
            pytest.fail("a server that never answers cannot produce a response")

    assert asyncio.get_running_loop().time() == pytest.approx(deadline.deadline_at, abs=TOLERANCE)


# --- aiohttp: the connection goes back to the pool -----------------------------------------------


@pytest.mark.looptime
async def test_aiohttp_releases_the_connection_of_a_stalled_body(
    aiohttp_session: aiohttp.ClientSession, raw_server: StartRawServer
) -> None:
    raw = await raw_server(stall_body)

    with pytest.raises(DeadlineExceededError):
        await AioHttpTransport(aiohttp_session).send(raw.base_url, get("x"), TIMEOUT)

    assert acquired_connections(aiohttp_session) == 0


async def test_aiohttp_releases_the_connection_of_a_truncated_body(
    aiohttp_session: aiohttp.ClientSession, raw_server: StartRawServer
) -> None:
    raw = await raw_server(truncate_body)

    with pytest.raises(TransportError):
        await AioHttpTransport(aiohttp_session).send(raw.base_url, get("x"), None)

    assert acquired_connections(aiohttp_session) == 0


async def test_aiohttp_unbuffered_reads_the_body_on_demand(
    aiohttp_session: aiohttp.ClientSession, raw_server: StartRawServer
) -> None:
    rest_of_body = asyncio.Event()

    async def send_body_in_two_parts(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
        await rest_of_body.wait()
        writer.write(b"67890")
        await writer.drain()

    raw = await raw_server(send_body_in_two_parts)
    transport = AioHttpTransport(aiohttp_session, buffer_payload=False)

    response = await transport.send(raw.base_url, get("x"), None)  # returns before the body is complete
    assert acquired_connections(aiohttp_session) == 1
    rest_of_body.set()
    assert await response.read() == b"1234567890"
    await response.close()

    assert acquired_connections(aiohttp_session) == 0


async def test_aiohttp_unbuffered_close_releases_an_unread_body(
    aiohttp_session: aiohttp.ClientSession, raw_server: StartRawServer
) -> None:
    raw = await raw_server(stall_body)
    response = await AioHttpTransport(aiohttp_session, buffer_payload=False).send(raw.base_url, get("x"), None)
    assert acquired_connections(aiohttp_session) == 1

    await response.close()
    await response.close()  # idempotent

    assert response.closed
    assert acquired_connections(aiohttp_session) == 0


async def test_aiohttp_unbuffered_read_of_a_truncated_body_raises_transport_error(
    aiohttp_session: aiohttp.ClientSession, raw_server: StartRawServer
) -> None:
    raw = await raw_server(truncate_body)
    transport = AioHttpTransport(aiohttp_session, buffer_payload=False)

    async with await transport.send(raw.base_url, get("x"), None) as response:
        with pytest.raises(TransportError):
            await response.read()


async def test_aiohttp_refusing_a_request_is_an_invalid_request(
    server: Server, aiohttp_session: aiohttp.ClientSession
) -> None:
    transport = AioHttpTransport(aiohttp_session)
    endpoint = server.base_url.replace("http://", "http://user:pass@")
    with pytest.raises(InvalidRequestError, match="aiohttp refused"):
        await transport.send(endpoint, get("x", headers={"Authorization": "Bearer t"}), 5.0)


# --- regressions (issue 13) ----------------------------------------------------------------------


@pytest_asyncio.fixture
async def see_other(refused_port: str) -> AsyncIterator[tuple[str, list[tuple[str, bytes]]]]:
    """A server answering every POST with ``303 See Other`` to ``refused_port``; its URL, and the
    method and body of every request it received."""
    received: list[tuple[str, bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        received.append((request.method, await request.read()))
        raise web.HTTPSeeOther(f"{refused_port}/done")

    server = test_utils.TestServer(_app_with(handle), host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/orders")), received
    finally:
        await server.close()


def _app_with(handle: Callable[[web.Request], Awaitable[web.Response]]) -> web.Application:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


@pytest.mark.looptime
async def test_defect_02_a_post_redirected_to_a_refused_port_is_sent_once(
    transport: Transport, see_other: tuple[str, list[tuple[str, bytes]]]
) -> None:
    """The second hop's refusal proves nothing about the first: the POST was processed, so the
    failure is a TransportError, which a retry strategy does not repeat for a POST."""
    url, received = see_other
    retrying = SequentialStrategy(attempts_count=3, delays_provider=constant_delays(delay=0.05))

    with pytest.raises(TransportError) as raised:
        await Pipeline(transport, [retrying])(post(url, b"one order"))

    assert received == [("POST", b"one order")]
    assert not isinstance(raised.value, ConnectError)


@pytest.mark.looptime
@pytest.mark.parametrize("library", ["aiohttp", pytest.param("httpx", marks=pytest.mark.needs_extras)])
async def test_defect_14_waiting_too_long_for_a_pooled_connection_is_a_connect_error(
    raw_server: StartRawServer, library: str
) -> None:
    """A pool of one connection, held by a request the server never answers: the next request
    times out waiting for a slot (aiohttp's ConnectionTimeoutError, httpx's PoolTimeout) and
    never left this machine."""
    holding_the_connection = asyncio.Event()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        holding_the_connection.set()
        await reader.read()

    raw = await raw_server(hold)
    async with contextlib.AsyncExitStack() as stack:
        transport: Transport
        if library == "aiohttp":
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1), timeout=aiohttp.ClientTimeout(connect=0.5)
            )
            stack.push_async_callback(session.close)
            transport = AioHttpTransport(session)
        else:
            httpx = pytest.importorskip("httpx")
            from aio_pipeline.transports.httpx import HttpxTransport

            client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=httpx.Timeout(None, pool=0.5))
            stack.push_async_callback(client.aclose)
            transport = HttpxTransport(client)
        held = asyncio.create_task(transport.send(raw.base_url, get("held"), TIMEOUT))
        await holding_the_connection.wait()

        with pytest.raises(ConnectError):
            await transport.send(raw.base_url, post("order", b"one order"), None)

        assert len(raw.received) == 1  # the held request; the POST never left
        with pytest.raises(DeadlineExceededError):
            await held


async def test_aiohttp_an_idempotent_resend_that_cannot_connect_is_a_connect_error_as_documented() -> None:
    """aiohttp resends a GET once when its connection drops unanswered; when that resend cannot
    connect, the first send had already left. A GET is repeatable whatever was sent, so the
    transport spares it the watch on sends that a POST gets (``_Sends``) and, as its docstring
    says, reports the failure to connect as such: a ``ConnectError``."""
    heads: list[bytes] = []

    async def hang_up_and_stop_listening(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        tcp_server.close()  # the resend finds the port closed
        writer.close()

    tcp_server = await asyncio.start_server(hang_up_and_stop_listening, "127.0.0.1", 0)
    base_url = f"http://127.0.0.1:{tcp_server.sockets[0].getsockname()[1]}"
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(ConnectError) as raised:
                await AioHttpTransport(session).send(base_url, get("x"), None)
    finally:
        tcp_server.close()
        await tcp_server.wait_closed()

    assert len(heads) == 1 and heads[0].startswith(b"GET /x ")
    assert isinstance(raised.value.__cause__, aiohttp.ClientConnectorError)  # the resend's failure


async def test_aiohttp_the_sessions_own_middlewares_run_for_every_hop(server: Server) -> None:
    """``AioHttpTransport`` adds its own middleware per request, which replaces the session's
    unless it passes them on: they must still run, once per hop, outside ours."""
    seen: list[str] = []

    async def record(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        seen.append(request.url.path)
        return await handler(request)

    async with aiohttp.ClientSession(middlewares=(record,)) as session:
        response = await AioHttpTransport(session).send(server.base_url, get(f"redirect/{HOPS}"), None)
        assert response.status == 200

    assert seen == [seen.path for seen in server.seen] == [f"/redirect/{hops}" for hops in range(HOPS, -1, -1)]


@pytest.mark.parametrize("buffer_payload", [True, False])
async def test_minor_reading_a_closed_response_says_it_was_closed(
    aiohttp_session: aiohttp.ClientSession, server: Server, buffer_payload: bool
) -> None:
    """Not a network fault: the caller closed the response before reading it, buffered or not."""
    transport = AioHttpTransport(aiohttp_session, buffer_payload=buffer_payload)
    async with await transport.send(server.base_url, get("echo"), None) as response:
        assert response.status == 200

    with pytest.raises(RuntimeError, match="was closed before its body was read"):
        await response.read()
    assert acquired_connections(aiohttp_session) == 0
