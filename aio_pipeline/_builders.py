"""Request builders: ``get("users/{id}", path_parameters={"id": "1"})`` and friends."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypedDict, Unpack

from ._errors import InvalidRequestError
from ._headers import Headers, HeadersLike
from ._request import QueryLike, Request, _query_pairs

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


class RequestOptions(TypedDict, total=False):
    """Keyword options every builder takes; see ``Request`` for their meaning."""

    headers: HeadersLike
    query_parameters: QueryLike
    path_parameters: Mapping[str, Any] | None
    allow_redirects: bool
    max_redirects: int
    escape_path_parameters: bool
    retryable: bool


def request(method: str, url: object, body: bytes = b"", **options: Unpack[RequestOptions]) -> Request:
    """A request for any method; ``url`` is absolute or relative to the client's endpoint."""
    path_parameters = options.get("path_parameters") or {}
    for name, value in path_parameters.items():
        if value is None:  # str(None) would send the segment "None"
            raise InvalidRequestError(f"path parameter {name!r} is None")
    return Request(
        method=method,
        url=str(url),
        headers=_NO_HEADERS if options.get("headers") is None else Headers(options.get("headers")),
        path_parameters={str(k): str(v) for k, v in path_parameters.items()},
        query_parameters=_query_pairs(options.get("query_parameters")),
        body=body,
        allow_redirects=options.get("allow_redirects", True),
        max_redirects=options.get("max_redirects", 10),
        escape_path_parameters=options.get("escape_path_parameters", True),
        retryable=options.get("retryable", False),
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
