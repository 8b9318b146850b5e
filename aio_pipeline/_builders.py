"""Request builders: ``get("users/{id}", path_parameters={"id": "1"})`` and friends."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypedDict, Unpack

from ._errors import InvalidRequestError
from ._headers import Headers, HeadersLike
from ._request import STANDARD_METHODS, QueryLike, Request, _query_pairs, check_headers, checked_method, new_request

__all__ = [
    "delete",
    "get",
    "head",
    "options",
    "patch",
    "patch_json",
    "post",
    "post_json",
    "put",
    "put_json",
    "request",
    "request_json",
]


_NO_HEADERS = Headers()  # immutable, so one instance serves every request without headers
_NO_PARAMETERS: Mapping[str, Any] = MappingProxyType({})


class RequestOptions(TypedDict, total=False):
    """Keyword options every builder takes; see ``Request`` for their meaning."""

    headers: HeadersLike
    query_parameters: QueryLike
    path_parameters: Mapping[str, Any] | None
    allow_redirects: bool
    max_redirects: int
    escape_path_parameters: bool
    retryable: bool


def request(
    method: str,
    url: object,
    body: bytes = b"",
    *,
    headers: HeadersLike = None,
    query_parameters: QueryLike = None,
    path_parameters: Mapping[str, Any] | None = None,
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """A request for any method; ``url`` is absolute or relative to the client's endpoint.

    Checked as ``Request(...)`` checks it (``InvalidRequestError`` for a bad method, body,
    header, redirect count or a ``None`` path parameter), but built without ``__init__``: every
    call starts here, and the common request (a standard method, no headers) needs no checks.
    """
    if type(method) is not str or method not in STANDARD_METHODS:
        method = checked_method(method)
    if type(body) is not bytes:
        raise InvalidRequestError(f"body must be bytes, got {type(body).__name__}")
    if max_redirects < 0:
        raise InvalidRequestError(f"max_redirects must be >= 0, got {max_redirects}")
    if path_parameters:
        for name, value in path_parameters.items():
            if value is None:  # str(None) would send the segment "None"
                raise InvalidRequestError(f"path parameter {name!r} is None")
        parameters: Mapping[str, str] = MappingProxyType({str(k): str(v) for k, v in path_parameters.items()})
    else:
        parameters = _NO_PARAMETERS
    return new_request(
        {
            "method": method,
            "url": url if type(url) is str else str(url),
            "headers": _NO_HEADERS if headers is None else check_headers(Headers(headers)),
            "path_parameters": parameters,
            "query_parameters": _query_pairs(query_parameters) if query_parameters else (),
            "body": body,
            "allow_redirects": allow_redirects,
            "max_redirects": max_redirects,
            "escape_path_parameters": escape_path_parameters,
            "endpoint": None,
            "deadline": None,
            "priority": None,
            "attempt": 1,
            "attempt_kind": "first",
            "retryable": retryable,
            "extensions": _NO_PARAMETERS,
        }
    )


def get(url: object, **options: Unpack[RequestOptions]) -> Request:
    return request("GET", url, **options)


def head(url: object, **options: Unpack[RequestOptions]) -> Request:
    return request("HEAD", url, **options)


def options(url: object, **options: Unpack[RequestOptions]) -> Request:
    return request("OPTIONS", url, **options)


def delete(url: object, **options: Unpack[RequestOptions]) -> Request:
    return request("DELETE", url, **options)


def post(url: object, body: bytes = b"", **options: Unpack[RequestOptions]) -> Request:
    return request("POST", url, body, **options)


def put(url: object, body: bytes = b"", **options: Unpack[RequestOptions]) -> Request:
    return request("PUT", url, body, **options)


def patch(url: object, body: bytes = b"", **options: Unpack[RequestOptions]) -> Request:
    return request("PATCH", url, body, **options)


def request_json(
    method: str,
    url: object,
    data: Any,
    *,
    encoding: str = "utf-8",
    dumps: Callable[[Any], str] = json.dumps,
    content_type: str = "application/json",
    **options: Unpack[RequestOptions],
) -> Request:
    """A request whose body is ``data`` as JSON. ``content_type`` is sent unless the caller's
    own headers carry a Content-Type, which then replaces it (it is never sent twice)."""
    headers = Headers(options.get("headers"))
    if "Content-Type" not in headers:
        headers = headers.extend({"Content-Type": content_type})
    options["headers"] = headers
    return request(method, url, dumps(data).encode(encoding), **options)


def post_json(url: object, data: Any, **options: Any) -> Request:
    """``request_json("POST", ...)``; takes the same keywords."""
    return request_json("POST", url, data, **options)


def put_json(url: object, data: Any, **options: Any) -> Request:
    """``request_json("PUT", ...)``; takes the same keywords."""
    return request_json("PUT", url, data, **options)


def patch_json(url: object, data: Any, **options: Any) -> Request:
    """``request_json("PATCH", ...)``; takes the same keywords."""
    return request_json("PATCH", url, data, **options)
