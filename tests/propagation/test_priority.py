"""Priority: wire values and tolerant parsing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aio_pipeline import Priority


def test_wire_values() -> None:
    assert [p.value for p in Priority] == ["high", "normal", "low"]
    assert f"{Priority.HIGH}" == "high"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("high", Priority.HIGH),
        (" LOW ", Priority.LOW),
        ("Normal", Priority.NORMAL),
        ("urgent", None),
        ("", None),
        ("0", None),
        (None, None),
    ],
)
def test_parse_is_tolerant(header: str | None, expected: Priority | None) -> None:
    assert Priority.parse(header) is expected


@given(st.text())
def test_parse_never_raises(value: str) -> None:
    assert Priority.parse(value) in (None, *Priority)
