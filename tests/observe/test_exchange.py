"""The server request's exchange: the status aiohttp sends for an escaping error, what counts as
a refusal, and the once-only, never-failing delivery of the status to observers. Real servers
and the observers that use it are in ``tests/server/test_what_went_on_the_wire.py``."""

from __future__ import annotations

import asyncio
import logging

import pytest

from aio_pipeline import (
    CircuitOpenError,
    ConnectError,
    DeadlineExceededError,
    DeadlineRejectedError,
    OverloadedError,
    get,
)
from aio_pipeline.observe import CURRENT_EXCHANGE, Exchange, exchange_of, rejection, status_for


class RaisedResponse(Exception):
    """Shaped as aiohttp's ``HTTPException``: marked ``__http_exception__``, with a status."""

    __http_exception__ = True

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class OutboundError(Exception):
    """Shaped as ``aiohttp.ClientResponseError``: a ``status``, but no response of ours."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DeadlineExceededError("late"), 408),
        (DeadlineRejectedError("refused"), 408),
        (OverloadedError("busy"), 503),
        (RaisedResponse(404), 404),
        (RaisedResponse(302), 302),
        (OutboundError(404), 500),  # aiohttp answers what it does not know as a response 500
        (TimeoutError(), 504),
        (ConnectError("refused"), 500),
        (KeyError("x"), 500),
        (asyncio.CancelledError(), None),  # nothing sent
        (KeyboardInterrupt(), None),
    ],
)
def test_status_for_is_aiohttps_rule_with_the_adapters_answers(error: BaseException, expected: int | None) -> None:
    assert status_for(error) == expected


def test_status_for_answers_an_expired_request_with_the_expired_status_given() -> None:
    assert status_for(DeadlineExceededError("late"), 504) == 504
    assert status_for(RaisedResponse(404), 504) == 404


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (DeadlineRejectedError("refused"), "deadline"),
        (OverloadedError("shed"), "overloaded"),
        (DeadlineExceededError("cancelled at the deadline"), None),  # the handler ran
        (DeadlineExceededError("outbound", request=get("x")), None),
        (CircuitOpenError("an outbound call's circuit"), None),  # a RejectedError, but not ours
        (RuntimeError("boom"), None),
    ],
)
def test_only_a_refusal_before_the_handler_is_a_rejection(error: BaseException, expected: str | None) -> None:
    assert rejection(error) == expected


def test_the_status_is_delivered_once_to_each_callback_registered_before_or_after() -> None:
    exchange = Exchange(object())
    got: list[tuple[str, int | None, bool]] = []
    exchange.when_sent(lambda status, aborted: got.append(("before", status, aborted)))
    assert exchange.callbacks
    exchange.sent(206)
    exchange.sent(500)  # only the first counts
    exchange.when_sent(lambda status, aborted: got.append(("after", status, aborted)))
    assert got == [("before", 206, False), ("after", 206, False)]
    aborted = Exchange(object())
    aborted.when_sent(lambda status, was_aborted: got.append(("aborted", status, was_aborted)))
    aborted.sent(None, True)
    assert got[-1] == ("aborted", None, True)


def test_a_failing_callback_is_logged_and_the_others_still_run(caplog: pytest.LogCaptureFixture) -> None:
    exchange = Exchange(object())
    got: list[int | None] = []

    def broken(status: int | None, aborted: bool) -> None:
        raise ValueError("an observer's bug")

    exchange.when_sent(broken)
    exchange.when_sent(lambda status, aborted: got.append(status))
    with caplog.at_level(logging.ERROR, logger="aio_pipeline.server"):
        exchange.sent(200)
    assert got == [200]
    assert [r.getMessage() for r in caplog.records] == ["a callback of the server request's exchange failed"]


def test_exchange_of_finds_the_exchange_of_that_request_only() -> None:
    request, other = object(), object()
    assert exchange_of(request) is None  # no adapter: observers record what they see
    exchange = Exchange(request)
    token = CURRENT_EXCHANGE.set(exchange)
    try:
        assert exchange_of(request) is exchange
        assert exchange_of(other) is None
    finally:
        CURRENT_EXCHANGE.reset(token)
    assert exchange_of(request) is None
