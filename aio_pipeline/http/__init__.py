"""HTTP values: ``Request`` (immutable, built by ``get``, ``post``, ...), ``Response``, ``Headers``
(a multidict), and the rules that turn a request's URL template, endpoint and parameters into the
URL sent and into the ``route`` and ``authority`` labels."""

from ._builders import (
    delete,
    get,
    head,
    options,
    patch,
    patch_json,
    post,
    post_json,
    put,
    put_json,
    request,
    request_json,
)
from ._headers import Headers, HeadersLike
from ._request import (
    IDEMPOTENT_METHODS,
    STANDARD_METHODS,
    QueryLike,
    Request,
    check_header_name,
    check_headers,
    new_request,
)
from ._response import Response
from ._url import authority_of, check_endpoint, join_url, route_of

__all__ = [
    "IDEMPOTENT_METHODS",
    "STANDARD_METHODS",
    "Headers",
    "HeadersLike",
    "QueryLike",
    "Request",
    "Response",
    "authority_of",
    "check_endpoint",
    "check_header_name",
    "check_headers",
    "delete",
    "get",
    "head",
    "join_url",
    "new_request",
    "options",
    "patch",
    "patch_json",
    "post",
    "post_json",
    "put",
    "put_json",
    "request",
    "request_json",
    "route_of",
]
