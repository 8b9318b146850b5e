"""Request builders: ``get("users/{id}", path_parameters={"id": "1"})`` and friends."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from ..errors import InvalidRequestError
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


def request(
    method: str,
    url: object,
    body: bytes = b"",
    *,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    headers: HeadersLike = None,
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """A request for any method; ``url`` (text or a ``yarl.URL``) is absolute or relative to the
    client's endpoint. ``body`` is bytes (``b""``, the default, for none; ``None`` is refused
    like any other non-bytes value, where aio-request takes it for no body).

    Checked as ``Request(...)`` checks it (``InvalidRequestError`` for a bad method, body,
    header, redirect count or a ``None`` path parameter), but built without ``__init__``: every
    call starts here, and the common request (a standard method, no headers) needs no checks.
    The keywords are aio-request's (``body`` may also be given third, by position), plus
    ``escape_path_parameters`` (default ``True``: values are percent-encoded) and ``retryable``
    (default ``False``: see ``Request.is_idempotent``).
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


# The builders below spell out every keyword (rather than ``**options``) so that their signatures
# are aio-request's, as tests/facade/test_signatures.py checks.


def get(
    url: object,
    *,
    headers: HeadersLike = None,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """A GET; see ``request`` for the keywords."""
    return request(
        "GET",
        url,
        headers=headers,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )


def head(
    url: object,
    *,
    headers: HeadersLike = None,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """A HEAD; see ``request`` for the keywords."""
    return request(
        "HEAD",
        url,
        headers=headers,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )


def options(
    url: object,
    *,
    headers: HeadersLike = None,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """An OPTIONS; see ``request`` for the keywords."""
    return request(
        "OPTIONS",
        url,
        headers=headers,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )


def delete(
    url: object,
    *,
    headers: HeadersLike = None,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """A DELETE; see ``request`` for the keywords."""
    return request(
        "DELETE",
        url,
        headers=headers,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )


def post(
    url: object,
    body: bytes = b"",
    *,
    headers: HeadersLike = None,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """A POST of ``body`` (bytes; ``b""`` for none); see ``request`` for the keywords."""
    return request(
        "POST",
        url,
        headers=headers,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        body=body,
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )


def put(
    url: object,
    body: bytes = b"",
    *,
    headers: HeadersLike = None,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """A PUT of ``body`` (bytes; ``b""`` for none); see ``request`` for the keywords."""
    return request(
        "PUT",
        url,
        headers=headers,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        body=body,
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )


def patch(
    url: object,
    body: bytes = b"",
    *,
    headers: HeadersLike = None,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """A PATCH of ``body`` (bytes; ``b""`` for none); see ``request`` for the keywords."""
    return request(
        "PATCH",
        url,
        headers=headers,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        body=body,
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )


def request_json(
    method: str,
    url: object,
    data: Any,
    *,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    headers: HeadersLike = None,
    encoding: str = "utf-8",
    dumps: Callable[[Any], str] = json.dumps,
    content_type: str = "application/json",
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """A request whose body is ``data`` as JSON (``dumps(data)`` encoded with ``encoding``), or
    ``data`` itself when it is ``bytes``: already-encoded JSON is sent verbatim, as aio-request
    0.2.9 does. ``content_type`` is sent unless the caller's own headers carry a Content-Type,
    which then replaces it (it is never sent twice)."""
    own = Headers(headers)
    if "Content-Type" not in own:
        own = own.extend({"Content-Type": content_type})
    return request(
        method,
        url,
        headers=own,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        body=data if isinstance(data, bytes) else dumps(data).encode(encoding),
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )


def post_json(
    url: object,
    data: Any,
    *,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    headers: HeadersLike = None,
    encoding: str = "utf-8",
    dumps: Callable[[Any], str] = json.dumps,
    content_type: str = "application/json",
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """``request_json("POST", ...)``."""
    return request_json(
        "POST",
        url,
        data,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        headers=headers,
        encoding=encoding,
        dumps=dumps,
        content_type=content_type,
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )


def put_json(
    url: object,
    data: Any,
    *,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    headers: HeadersLike = None,
    encoding: str = "utf-8",
    dumps: Callable[[Any], str] = json.dumps,
    content_type: str = "application/json",
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """``request_json("PUT", ...)``."""
    return request_json(
        "PUT",
        url,
        data,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        headers=headers,
        encoding=encoding,
        dumps=dumps,
        content_type=content_type,
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )


def patch_json(
    url: object,
    data: Any,
    *,
    path_parameters: Mapping[str, Any] | None = None,
    query_parameters: QueryLike = None,
    headers: HeadersLike = None,
    encoding: str = "utf-8",
    dumps: Callable[[Any], str] = json.dumps,
    content_type: str = "application/json",
    allow_redirects: bool = True,
    max_redirects: int = 10,
    escape_path_parameters: bool = True,
    retryable: bool = False,
) -> Request:
    """``request_json("PATCH", ...)``."""
    return request_json(
        "PATCH",
        url,
        data,
        path_parameters=path_parameters,
        query_parameters=query_parameters,
        headers=headers,
        encoding=encoding,
        dumps=dumps,
        content_type=content_type,
        allow_redirects=allow_redirects,
        max_redirects=max_redirects,
        escape_path_parameters=escape_path_parameters,
        retryable=retryable,
    )
