"""Request and its builders: immutability, URL building, escaping, JSON bodies."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

import aio_pipeline as ap
from aio_pipeline import InvalidRequestError, Request
from aio_pipeline.http import join_url

BUILDERS = [ap.get, ap.head, ap.options, ap.delete, ap.post, ap.put, ap.patch]


@pytest.mark.parametrize("builder", BUILDERS)
def test_builders_set_their_method(builder) -> None:  # type: ignore[no-untyped-def]
    assert builder("x").method == builder.__name__.upper()


def test_request_builder_normalises_the_method() -> None:
    assert ap.request("get", "x").method == "GET"
    assert ap.request("M-SEARCH", "x").method == "M-SEARCH"


@pytest.mark.parametrize("bad", ["", "GET /", "G\tET", "GÉT", "GET\r\nX: 1"])
def test_bad_method_is_rejected(bad: str) -> None:
    with pytest.raises(InvalidRequestError, match="method"):
        ap.request(bad, "x")


def test_non_bytes_body_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="body must be bytes"):
        ap.post("x", "text")  # type: ignore[arg-type]


def test_negative_max_redirects_is_rejected() -> None:
    with pytest.raises(InvalidRequestError, match="max_redirects"):
        ap.get("x", max_redirects=-1)


def test_request_is_immutable_and_replace_copies() -> None:
    request = ap.get("x", headers={"A": "1"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.url = "y"  # type: ignore[misc]
    changed = request.replace(url="y")
    assert (request.url, changed.url) == ("x", "y")
    assert request.update_headers({"a": "2"}).headers.getall("A") == ["2"]
    assert request.extend_headers({"a": "2"}).headers.getall("A") == ["1", "2"]
    assert request.headers.getall("A") == ["1"]
    assert request.with_extension("k", 1).extensions == {"k": 1}
    assert request.extensions == {}


@pytest.mark.parametrize(
    ("value", "expected_path"),
    [
        ("../../etc", "/api/files/..%2F..%2Fetc"),
        ("a?b=1", "/api/files/a%3Fb%3D1"),
        ("..", "/api/files/%2E%2E"),
        (".", "/api/files/%2E"),
        ("a#frag", "/api/files/a%23frag"),
        ("a b/ü", "/api/files/a%20b%2F%C3%BC"),
    ],
)
def test_path_parameters_cannot_change_path_or_query(value: str, expected_path: str) -> None:
    url = ap.get("files/{name}", path_parameters={"name": value}).absolute_url("http://h/api/")
    assert url == "http://h" + expected_path


@given(st.text())
def test_any_path_parameter_stays_one_segment_without_query(value: str) -> None:
    url = ap.get("files/{name}/tail", path_parameters={"name": value}).absolute_url("http://h/")
    path = url.removeprefix("http://h/")
    assert "?" not in path
    assert "#" not in path
    assert path.split("/")[0] == "files"
    assert path.split("/")[2] == "tail"
    assert len(path.split("/")) == 3
    assert path.split("/")[1] not in (".", "..")


def test_escaping_can_be_turned_off() -> None:
    request = ap.get("files/{path}", path_parameters={"path": "a/b"}, escape_path_parameters=False)
    assert request.absolute_url("http://h") == "http://h/files/a/b"


def test_missing_path_parameter_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError, match="'id'"):
        ap.get("users/{id}", path_parameters={"other": "1"}).absolute_url("http://h")


def test_url_without_parameters_encodes_literal_braces() -> None:
    assert ap.get("a{b}").absolute_url("http://h") == "http://h/a%7Bb%7D"


def test_query_parameters_are_encoded_and_repeatable() -> None:
    request = ap.get("search?x=1", query_parameters={"q": "a&b=c", "tag": ["1", "2"], "n": 3})
    assert request.render_path() == "search?x=1&q=a%26b%3Dc&tag=1&tag=2&n=3"
    assert request.route == "search"


@pytest.mark.parametrize(
    ("endpoint", "path", "expected"),
    [
        ("http://h/api/", "users/1", "http://h/api/users/1"),
        ("http://h/api", "users/1", "http://h/api/users/1"),
        ("http://h/api/", "/users/1", "http://h/api/users/1"),
        ("http://h", "users", "http://h/users"),
        ("http://h:8080/", "", "http://h:8080/"),
        ("http://h/api", "?q=1", "http://h/api?q=1"),
        ("http://h/api/?drop=1", "x", "http://h/api/x"),
        ("http://h/api/", "https://other/x", "https://other/x"),
    ],
)
def test_relative_paths_join_under_the_endpoint_path(endpoint: str, path: str, expected: str) -> None:
    assert join_url(endpoint, path) == expected


@pytest.mark.parametrize("endpoint", [None, "h/api", "ftp://h/", "http://", ""])
def test_relative_url_needs_a_valid_endpoint(endpoint: str | None) -> None:
    with pytest.raises(InvalidRequestError):
        join_url(endpoint, "x")


@pytest.mark.parametrize("builder", [ap.post_json, ap.put_json, ap.patch_json])
def test_json_builders_encode_and_set_content_type_once(builder) -> None:  # type: ignore[no-untyped-def]
    request = builder("x", {"a": [1, "é"]})
    assert json.loads(request.body) == {"a": [1, "é"]}
    assert request.headers.getall("content-type") == ["application/json"]


def test_callers_content_type_replaces_the_default() -> None:
    request = ap.request_json("POST", "x", 1, headers={"content-type": "application/vnd.x+json"})
    assert request.headers.getall("Content-Type") == ["application/vnd.x+json"]


def test_idempotency() -> None:
    assert ap.get("x").is_idempotent
    assert ap.delete("x").is_idempotent
    assert not ap.post("x").is_idempotent
    assert ap.post("x", retryable=True).is_idempotent
    assert ap.post("x", headers={"idempotency-key": "k"}).is_idempotent


def test_direct_construction_accepts_plain_mappings() -> None:
    request = Request(method="get", url="x", headers={"A": "1"}, query_parameters={"q": "1"})  # type: ignore[arg-type]
    assert request.headers["a"] == "1"
    assert request.query_parameters == (("q", "1"),)
