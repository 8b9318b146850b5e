"""Headers: case-insensitive, immutable, repeated values kept."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from aio_pipeline import Headers


def test_lookup_ignores_case_and_keeps_given_case() -> None:
    headers = Headers({"Content-Type": "text/plain"})
    assert headers["content-type"] == "text/plain"
    assert "CONTENT-TYPE" in headers
    assert 42 not in headers
    assert list(headers) == ["Content-Type"]


def test_repeated_values_are_kept_in_order() -> None:
    headers = Headers([("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("X", "y")])
    assert headers["Set-Cookie"] == "a=1"
    assert headers.getall("SET-COOKIE") == ["a=1", "b=2"]
    with pytest.raises(KeyError):
        headers.getall("missing")  # multidict's rule: a default says what "none" is
    assert headers.getall("missing", []) == []
    assert headers.getall("missing", ["d"]) == ["d"]
    assert len(headers) == 3  # every pair, as multidict counts
    assert headers.multi_items() == [("Set-Cookie", "a=1"), ("set-cookie", "b=2"), ("X", "y")]


def test_update_replaces_every_value_of_a_name() -> None:
    headers = Headers([("Accept", "a"), ("accept", "b"), ("X", "1")])
    updated = headers.update({"ACCEPT": "c"})
    assert updated.multi_items() == [("ACCEPT", "c"), ("X", "1")]  # in the first value's place
    assert headers.getall("accept") == ["a", "b"]  # the original is untouched


def test_extend_appends_and_without_removes() -> None:
    headers = Headers({"A": "1"}).extend({"a": "2"})
    assert headers.getall("A") == ["1", "2"]
    assert headers.without("a", "b") == Headers()


def test_equality_ignores_name_case_and_holds_against_multidicts() -> None:
    assert Headers({"A": "1"}) == Headers({"a": "1"})
    assert Headers({"A": "1"}) != Headers({"A": "2"})
    # What aio-request's users compare headers against (its requests carry a CIMultiDict).
    assert Headers([("A", "1"), ("a", "2")]) == CIMultiDict([("a", "1"), ("A", "2")])
    assert Headers({"A": "1"}).extend({"B": "2"}) == CIMultiDictProxy(CIMultiDict(A="1", B="2"))
    assert Headers({"A": "1"}) == {"A": "1"}
    assert Headers({"A": "1"}) != 1


def test_a_mutable_multidict_is_copied_and_a_read_only_view_is_shared() -> None:
    owned = CIMultiDict(A="1")
    copied = Headers(owned)
    owned["A"] = "2"
    assert copied["A"] == "1"  # its owner's later change does not show
    view = CIMultiDictProxy(CIMultiDict(B="1"))
    assert Headers(view) == view
    assert Headers(Headers(view)) == view


def test_is_not_mutable_or_hashable() -> None:
    headers = Headers({"A": "1"})
    with pytest.raises(TypeError):
        headers["A"] = "2"  # type: ignore[index]
    with pytest.raises(TypeError):
        hash(headers)
