"""Fuzzing every header the library parses, byte by byte.

Server side, against a real aiohttp server running ``aiohttp_middleware_factory()`` on 127.0.0.1,
with requests written as raw bytes (so that anything an HTTP client would refuse to send can be
sent: non-UTF-8 bytes, NUL, unicode digits, huge values, repeated headers):

- ``X-Request-Timeout`` and ``X-Request-Priority``: never a 500; the handler runs exactly when
  the answer is 200, and then with a sane deadline (what the README's server rules give for one
  of the values sent) and a known priority;
- ``X-Service-Name`` (with the Prometheus provider): the ``client`` label stays bounded.

Client side: ``Retry-After`` of any shape, through both strategies (a scripted transport) and
through both real transports (a raw server): never an exception, never a sleep past the deadline.
``Content-Type``'s charset, which ``Response.text()`` and ``.json()`` read, never makes them raise.

``tests/server/test_aiohttp_server.py`` and ``tests/test_retry_after.py`` cover the well-formed
values and printable ASCII; this file covers the rest.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aio_pipeline import (
    Deadline,
    Pipeline,
    Priority,
    Response,
    aiohttp_middleware_factory,
    constant_delays,
    get,
    parse_retry_after,
    sequential_strategy,
    setup,
)
from aio_pipeline.middlewares import SystemHeaders
from aio_pipeline.middlewares.deadline import ClientDeadline
from aio_pipeline.middlewares.hedging import ParallelStrategy
from aio_pipeline.middlewares.retry import SequentialStrategy
from aio_pipeline.middlewares.shedding import LoadShedding
from aio_pipeline.middlewares.strategy import PerCallStrategy
from aio_pipeline.propagation import get_context
from aio_pipeline.testing import FakeTransport

if TYPE_CHECKING:
    from conftest import StartRawServer

HOST = "127.0.0.1"
MAX_TIMEOUT = 30.0
DEFAULT_TIMEOUT = 20.0
LOW_TIMEOUT = 0.005

# --- header values, as bytes ----------------------------------------------------------------------

WHITESPACE = st.sampled_from([b"", b" ", b"\t", b" \t ", b"\xc2\xa0", b"\x0b", b"\x1c"])
NUMBERS = st.one_of(
    st.floats().map(repr),
    st.floats().map(lambda x: f"{x:.4f}" if math.isfinite(x) else str(x)),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.decimals(allow_nan=True).map(str),
    st.sampled_from(["1e400", "-1e400", "1_0", "0x10", ".5", "5.", "+1", "-0", "1e-9", "0.0049", "0.005"]),
    st.sampled_from(["\u0661\u0662", "\uff11\uff12", "\u0969", "\U0001d7d9"]),  # unicode digits
).map(lambda text: text.encode())
PADDED_NUMBERS = st.tuples(WHITESPACE, NUMBERS, WHITESPACE).map(b"".join)
UNICODE = st.text(st.characters(exclude_characters="\r\n"), max_size=40).map(
    lambda text: text.encode("utf-8", "surrogatepass")
)
GARBAGE = st.binary(max_size=60).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))
HUGE = st.integers(min_value=100, max_value=12_000).map(lambda n: b"9" * n)
HEADER_VALUE = st.one_of(PADDED_NUMBERS, UNICODE, GARBAGE, HUGE)
#: None: the header is absent; a list: that many copies of it (repeats included).
REPEATED = st.lists(HEADER_VALUE, max_size=3)
PRIORITY_VALUE = st.one_of(
    st.tuples(WHITESPACE, st.sampled_from([b"high", b"LOW", b"Normal", b"h\xc4\xb1gh", b"hi\x00gh"]), WHITESPACE).map(
        b"".join
    ),
    UNICODE,
    GARBAGE,
)
NAME_CASES = st.sampled_from(["X-Request-Timeout", "x-request-timeout", "X-REQUEST-TIMEOUT"])


def documented_timeout(raw: bytes) -> float | None:
    """What the README's server rules give for one ``X-Request-Timeout`` value (decoded as aiohttp
    does): the default for unusable values, ``None`` (a 408) for spent ones, else the value, capped."""
    text = raw.decode("utf-8", "surrogateescape").strip(" \t")  # aiohttp trims the value's edges
    if len(text) > 32:
        return DEFAULT_TIMEOUT
    # ASCII decimal seconds with an optional exponent, as clients write them; nothing else.
    if not re.fullmatch(r"-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?", text):
        return DEFAULT_TIMEOUT
    seconds = float(text)
    if seconds > 86_400:
        return DEFAULT_TIMEOUT
    if seconds < LOW_TIMEOUT:
        return None
    return min(seconds, MAX_TIMEOUT)


# --- a real server and a raw client -------------------------------------------------------------


@dataclass
class Handled:
    """What the handler saw, each time it ran."""

    timeouts: list[float]
    priorities: list[Priority | None]


HANDLED = web.AppKey("handled", Handled)


async def record(request: web.Request) -> web.Response:
    context = get_context()
    assert context.deadline is not None
    request.app[HANDLED].timeouts.append(context.deadline.timeout)
    request.app[HANDLED].priorities.append(context.priority)
    return web.Response(text="ok")


@dataclass
class RunningServer:
    port: int
    handled: Handled
    app: web.Application


@pytest_asyncio.fixture
async def fuzzed_server() -> AsyncIterator[RunningServer]:
    """The standard stack, capped at MAX_TIMEOUT, with load shedding inside (it reads the context)."""
    shedding = LoadShedding(max_concurrency=4, max_wait=0.5)
    app = web.Application(middlewares=[aiohttp_middleware_factory(max_timeout=MAX_TIMEOUT, middlewares=[shedding])])
    app[HANDLED] = Handled([], [])
    app.router.add_get("/record", record)
    server = TestServer(app, host=HOST)
    await server.start_server()
    try:
        assert server.port is not None
        yield RunningServer(server.port, app[HANDLED], app)
    finally:
        await server.close()


async def exchange(port: int, headers: list[tuple[bytes, bytes]]) -> int:
    """Send one GET with ``headers`` written byte for byte; the status answered (0 for none)."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        lines = [b"GET /record HTTP/1.1", b"Host: " + HOST.encode(), b"Connection: close"]
        lines += [name + b": " + value for name, value in headers]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()  # the rest, until the server hangs up
    finally:
        writer.close()
        await writer.wait_closed()
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", status_line)
    return int(match.group(1)) if match else 0


# --- X-Request-Timeout and X-Request-Priority -----------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.looptime
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(timeouts=REPEATED, name=NAME_CASES, priorities=st.lists(PRIORITY_VALUE, max_size=2))
@example(timeouts=[b"\xff\xfe"], name="X-Request-Timeout", priorities=[b"\xff"])
@example(timeouts=[b"1e9", b"0"], name="X-Request-Timeout", priorities=[b"low", b"high"])
@example(timeouts=[b"0", b"5"], name="X-Request-Timeout", priorities=[])
@example(
    timeouts=[b"\xd9\xa1\xd9\xa2"], name="X-Request-Timeout", priorities=[b"h\xc4\xb1gh"]
)  # Arabic-Indic 12, dotless i
@example(timeouts=[b"9" * 9000], name="X-Request-Timeout", priorities=[])  # longer than aiohttp takes
@example(timeouts=[b"5\x00"], name="X-Request-Timeout", priorities=[b"high\x00"])
@example(timeouts=[b"-1" + b"0" * 30 + b" "], name="X-Request-Timeout", priorities=[])  # 32 characters once trimmed
async def test_no_timeout_or_priority_bytes_ever_give_a_500_or_an_insane_deadline(
    fuzzed_server: RunningServer, timeouts: list[bytes], name: str, priorities: list[bytes]
) -> None:
    handled = fuzzed_server.handled
    before = len(handled.timeouts)
    headers = [(name.encode(), value) for value in timeouts]
    headers += [(b"X-Request-Priority", value) for value in priorities]

    status = await exchange(fuzzed_server.port, headers)

    assert status in (200, 400, 408)  # 400: aiohttp's own parser refused the bytes
    ran = len(handled.timeouts) - before
    assert ran == (1 if status == 200 else 0)
    if status == 200:
        timeout = handled.timeouts[-1]
        assert LOW_TIMEOUT <= timeout <= MAX_TIMEOUT
        possible = {documented_timeout(value) for value in timeouts} or {DEFAULT_TIMEOUT}
        assert any(seconds is not None and timeout == pytest.approx(seconds) for seconds in possible)
        assert handled.priorities[-1] in set(Priority)
    if status == 408:
        assert None in {documented_timeout(value) for value in timeouts}


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "line",
    [
        b"X-Request-Timeout: 5\rX-Evil: 1",  # a bare CR
        b"X-Request-Timeout: 5\nX-Request-Timeout: 0",  # a bare LF
        b"X-Request-Timeout:\r\n 5",  # obsolete line folding
        b"X-Request-Timeout : 5",  # a space before the colon
        b"X-Request-Timeout\x00: 5",  # a NUL in the name
        b"X-Request-Timeout: " + b"1" * 70_000,  # far past any header limit
    ],
)
async def test_malformed_header_lines_are_refused_or_ignored_never_a_500(
    fuzzed_server: RunningServer, line: bytes
) -> None:
    reader, writer = await asyncio.open_connection(HOST, fuzzed_server.port)
    try:
        writer.write(b"GET /record HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + line + b"\r\n\r\n")
        await writer.drain()
        status_line = await reader.readline()
        await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()

    status = int(status_line.split()[1]) if status_line else 0
    assert status in (0, 200, 400, 408, 431)
    for timeout in fuzzed_server.handled.timeouts:
        assert LOW_TIMEOUT <= timeout <= MAX_TIMEOUT


# --- X-Service-Name: a bounded metric label --------------------------------------------------------

PLAIN_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
SERVICE_NAME = st.one_of(
    st.from_regex(PLAIN_NAME, fullmatch=True).map(str.encode),
    st.tuples(WHITESPACE, st.from_regex(PLAIN_NAME, fullmatch=True).map(str.encode), WHITESPACE).map(b"".join),
    UNICODE,
    GARBAGE,
    st.integers(min_value=65, max_value=5000).map(lambda n: b"a" * n),
)


@pytest_asyncio.fixture
async def metered_server() -> AsyncIterator[tuple[int, Any]]:
    from aio_pipeline.middlewares import prometheus as metrics

    prometheus_client = pytest.importorskip("prometheus_client")
    registry = prometheus_client.CollectorRegistry()
    provider = metrics.PrometheusMetricsProvider(registry=registry)
    app = web.Application(middlewares=[aiohttp_middleware_factory(metrics_provider=provider)])
    app[HANDLED] = Handled([], [])
    app.router.add_get("/record", record)
    server = TestServer(app, host=HOST)
    await server.start_server()
    try:
        assert server.port is not None
        yield server.port, registry
    finally:
        await server.close()


def client_labels(registry: Any) -> set[str]:
    return {
        sample.labels["client"]
        for family in registry.collect()
        if family.name == "aio_pipeline_server_request_duration_seconds"
        for sample in family.samples
        if "client" in sample.labels
    }


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.needs_extras
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names=st.lists(SERVICE_NAME, max_size=2))
@example(names=[b"orders\xff"])
@example(names=[b"a" * 65])
@example(names=[b"  billing  "])
@example(names=[b"\xd8\xb7\xd9\x84\xd8\xa8"])  # Arabic letters: not plain ASCII
async def test_the_service_name_label_is_bounded_whatever_is_sent(
    metered_server: tuple[int, Any], names: list[bytes]
) -> None:
    port, registry = metered_server
    headers = [(b"X-Service-Name", name) for name in names]

    status = await exchange(port, headers)

    assert status in (200, 400)
    labels = client_labels(registry)
    assert all(label in ("unknown", "invalid") or PLAIN_NAME.fullmatch(label) for label in labels)
    if status == 200:
        first = names[0].decode("utf-8", "surrogateescape").strip() if names else ""
        expected = "unknown" if not first else first if PLAIN_NAME.fullmatch(first) else "invalid"
        assert expected in labels


# --- Retry-After, on the client -------------------------------------------------------------------

DEADLINE = 1.0
BACKOFF = 0.05
DELTA_SECONDS = re.compile(r"\d+(?:\.\d+)?")  # as parse_retry_after reads them


def http_date(moment: datetime) -> str:
    return email.utils.format_datetime(moment.replace(tzinfo=UTC), usegmt=True)


SOON = st.floats(min_value=-10, max_value=5).map(lambda s: http_date(datetime.now(UTC) + timedelta(seconds=s)))
RETRY_AFTER = st.one_of(
    st.text(max_size=40),
    NUMBERS.map(lambda raw: raw.decode()),
    st.floats(min_value=0, max_value=2, allow_nan=False).map(lambda s: f"{s:.3f}"),
    st.integers(min_value=0, max_value=10**20).map(str),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(http_date),
    SOON,
    st.binary(max_size=30).map(lambda raw: raw.decode("latin-1")),
)


@pytest.mark.asyncio
@pytest.mark.looptime
@settings(max_examples=200, deadline=None)
@given(value=RETRY_AFTER, hedging=st.booleans())
@example(value="0.5", hedging=False)
@example(value="0.99", hedging=True)
@example(value="3600", hedging=True)
@example(value="\u0663\u0666\u0660\u0660", hedging=False)  # 3600 in Arabic-Indic digits
@example(value="Fri, 31 Dec 9999 23:59:59 GMT", hedging=True)
@example(value="9" * 400, hedging=False)
async def test_no_retry_after_makes_a_strategy_raise_or_sleep_past_the_deadline(value: str, hedging: bool) -> None:
    strategy = (
        ParallelStrategy(attempts_count=2, delays_provider=constant_delays(delay=10.0))
        if hedging
        else SequentialStrategy(attempts_count=2, delays_provider=constant_delays(delay=BACKOFF))
    )
    transport = FakeTransport([Response(503, {"Retry-After": value}), Response(200)])
    pipeline = Pipeline(transport, [ClientDeadline(), PerCallStrategy(strategy), SystemHeaders()])
    loop = asyncio.get_running_loop()
    started = loop.time()

    async with await pipeline(
        get("x").replace(endpoint="http://service.test/", deadline=Deadline.from_timeout(DEADLINE))
    ) as response:
        elapsed = loop.time() - started

    assert response.status in (200, 503)
    assert elapsed <= DEADLINE - LOW_TIMEOUT + 1e-9
    asked = parse_retry_after(value)
    backoff = 0.0 if hedging else BACKOFF
    wait = backoff if asked is None else max(backoff, asked)
    if abs(wait - (DEADLINE - LOW_TIMEOUT)) < 1e-6:
        return  # right at the edge of what is left: either outcome is correct
    if asked is not None and not DELTA_SECONDS.fullmatch(value.strip()):
        # An HTTP-date, measured against the wall clock: never sooner than asked (to the ms).
        if response.status == 200:
            assert elapsed >= wait - 0.001
    elif wait > DEADLINE - LOW_TIMEOUT:
        assert (response.status, elapsed) == (503, 0.0)  # no point waiting: returned at once
    else:
        assert response.status == 200
        assert elapsed == pytest.approx(wait, abs=1e-6)


# Raw Retry-After header lines, and what one sequential call (1 s deadline) must give.
RAW_RETRY_AFTER = [
    pytest.param([b"Retry-After: 0.2"], 200, 0.2, id="short"),
    pytest.param([b"Retry-After: 3600"], 503, 0.0, id="an-hour"),
    pytest.param([b"Retry-After: 0.2", b"Retry-After: 3600"], 200, 0.2, id="repeated-first-wins"),
    pytest.param([b"Retry-After: \xff\xfe"], 200, BACKOFF, id="not-utf-8"),
    pytest.param(["Retry-After: \u0663\u0666\u0660\u0660".encode()], 503, 0.0, id="arabic-indic-3600"),
    pytest.param([b"Retry-After: " + b"9" * 6000], 200, BACKOFF, id="huge"),
    pytest.param([b"Retry-After: Fri, 31 Dec 9999 23:59:59 GMT"], 503, 0.0, id="year-9999"),
    pytest.param([b"Retry-After: Mon, 01 Jan 0001 00:00:00 GMT"], 200, BACKOFF, id="year-1"),
    pytest.param([b"Retry-After: -5"], 200, BACKOFF, id="negative"),
    pytest.param([b"Retry-After:"], 200, BACKOFF, id="empty"),
]


@pytest.mark.asyncio
@pytest.mark.looptime
@pytest.mark.parametrize(("lines", "status", "seconds"), RAW_RETRY_AFTER)
async def test_retry_after_bytes_through_a_real_transport(
    transport: Any, raw_server: StartRawServer, lines: list[bytes], status: int, seconds: float
) -> None:
    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(raw.received) == 1:
            head = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n"
            writer.write(head + b"".join(line + b"\r\n" for line in lines) + b"\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()

    raw = await raw_server(respond)
    client = setup(transport=transport, endpoint=raw.base_url + "/")
    strategy = sequential_strategy(attempts_count=2, delays_provider=constant_delays(delay=BACKOFF))
    loop = asyncio.get_running_loop()
    started = loop.time()

    async with client.request(get("x"), deadline=Deadline.from_timeout(DEADLINE), strategy=strategy) as response:
        assert response.status == status

    assert loop.time() - started == pytest.approx(seconds, abs=0.005)
    assert len(raw.received) == (2 if status == 200 else 1)


# --- Content-Type's charset, read by Response.text() and .json() ----------------------------------


@pytest.mark.asyncio
@settings(max_examples=100, deadline=None)
@given(charset=st.text(max_size=20))
@example(charset="utf-8\x00")
@example(charset="\udcff")  # how aiohttp decodes a non-UTF-8 byte in a header
@example(charset="rot13")
@example(charset="base64")
@example(charset="idna")
@example(charset="undefined")
async def test_no_charset_makes_text_or_json_raise_anything_but_content_type_error(charset: str) -> None:
    body = b'{"k": "caf\xc3\xa9 \xff"}'
    for media_type in ("text/plain", "application/json"):
        response = Response(200, {"Content-Type": f"{media_type}; charset={charset}"}, body)
        text = await response.text()
        assert isinstance(text, str)
        if media_type == "application/json":
            await response.json(loads=lambda text: text)  # the charset decides the text, never an error


@pytest.mark.asyncio
async def test_a_non_utf8_charset_from_a_real_server_leaves_text_readable(
    transport: Any, raw_server: StartRawServer, request: pytest.FixtureRequest
) -> None:

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=\xff\r\nContent-Length: 5\r\n\r\nhello")
        await writer.drain()

    raw = await raw_server(respond)
    async with await transport.send(raw.base_url, get("x"), 5.0) as response:
        assert await response.text() == "hello"
