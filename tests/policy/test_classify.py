"""Outcome classification: the default verdicts, overrides, exceptions, and repeatability."""

from __future__ import annotations

import pytest

from aio_pipeline import (
    CircuitOpenError,
    ConnectError,
    DeadlineExceededError,
    InvalidRequestError,
    Response,
    TooManyRedirectsError,
    TransportError,
    get,
    post,
)
from aio_pipeline.policy import (
    DefaultResponseClassifier,
    Outcome,
    ResponseClassifier,
    ResponseVerdict,
    is_repeatable,
)

ACCEPT, REJECT = ResponseVerdict.ACCEPT, ResponseVerdict.REJECT


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, ACCEPT),
        (204, ACCEPT),
        (301, ACCEPT),
        (400, ACCEPT),
        (404, ACCEPT),
        (409, ACCEPT),
        (408, REJECT),
        (429, REJECT),
        (488, ACCEPT),
        (489, REJECT),
        (500, REJECT),
        (502, REJECT),
        (503, REJECT),
        (599, REJECT),
    ],
)
def test_default_verdict_by_status(status: int, verdict: ResponseVerdict) -> None:
    assert DefaultResponseClassifier().classify(Response(status)) is verdict


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_do_not_retry_header_accepts_any_status(status: int) -> None:
    response = Response(status, {"x-do-not-retry": "1"})
    assert DefaultResponseClassifier().classify(response) is ACCEPT


def test_verdict_for_status_overrides_everything() -> None:
    classifier = DefaultResponseClassifier(verdict_for_status={404: REJECT, 503: ACCEPT, 500: REJECT})
    assert classifier.classify(Response(404)) is REJECT
    assert classifier.classify(Response(503)) is ACCEPT
    # The override is checked before X-Do-Not-Retry, as in aio-request.
    assert classifier.classify(Response(500, {"X-Do-Not-Retry": "1"})) is REJECT


def test_verdict_for_status_none_is_accepted_and_the_mapping_is_copied() -> None:
    overrides = {404: REJECT}
    classifier = DefaultResponseClassifier(verdict_for_status=overrides)
    overrides[404] = ACCEPT
    assert classifier.classify(Response(404)) is REJECT
    assert DefaultResponseClassifier(verdict_for_status=None).classify(Response(404)) is ACCEPT  # type: ignore[arg-type]


def test_a_bad_override_names_the_parameter() -> None:
    with pytest.raises(ValueError, match="verdict_for_status"):
        DefaultResponseClassifier(verdict_for_status={500: "accept"})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (TransportError("reset"), REJECT),
        (ConnectError("refused"), REJECT),
        (DeadlineExceededError("slow"), REJECT),
        (TooManyRedirectsError("loop"), ACCEPT),
        (CircuitOpenError("open", retry_after=1.0), ACCEPT),
        (InvalidRequestError("bad url"), ACCEPT),
        (KeyError("a bug"), ACCEPT),
    ],
)
def test_exceptions_are_classified(error: Exception, verdict: ResponseVerdict) -> None:
    assert DefaultResponseClassifier().classify_result(error) is verdict


def test_a_custom_classifier_only_needs_classify() -> None:
    class OnlyTeapots(ResponseClassifier):
        def classify(self, response: Response) -> ResponseVerdict:
            return REJECT if response.status == 418 else ACCEPT

    classifier = OnlyTeapots()
    assert classifier.classify_result(Response(418)) is REJECT
    assert classifier.classify_result(Response(503)) is ACCEPT
    assert classifier.classify_result(ConnectError("refused")) is REJECT  # the default for errors


def test_classifiers_are_abstract() -> None:
    with pytest.raises(TypeError):
        ResponseClassifier()  # type: ignore[abstract]


def test_repeatable_for_idempotent_methods_retryable_marks_and_idempotency_keys() -> None:
    failure = Response(503)
    assert is_repeatable(get("x"), failure)
    assert not is_repeatable(post("x"), failure)
    assert is_repeatable(post("x", retryable=True), failure)
    assert is_repeatable(post("x", headers={"Idempotency-Key": "k1"}), failure)


def test_a_request_that_never_left_the_machine_is_always_repeatable() -> None:
    assert is_repeatable(post("x"), ConnectError("refused"))
    assert not is_repeatable(post("x"), TransportError("reset after sending"))


@pytest.mark.asyncio
async def test_outcome_unwraps_and_discards() -> None:
    response = Response(200)
    outcome = Outcome(get("x"), response, ACCEPT, 0.0, 0.1)
    assert outcome.accepted and outcome.unwrap() is response
    await outcome.discard()
    assert response.closed
    error = ConnectError("refused")
    failed = Outcome(get("x"), error, REJECT, 0.0, 0.1)
    with pytest.raises(ConnectError) as raised:
        failed.unwrap()
    assert raised.value is error  # re-raised as it was, never wrapped
    await failed.discard()  # nothing to close: no error
