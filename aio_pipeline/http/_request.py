"""``Request``: an immutable description of one call. How its URL is built is ``_url``'s."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeAlias
from urllib.parse import urlencode

from ..errors import InvalidRequestError
from ..propagation import Deadline, Priority
from ._headers import Headers
from ._url import authority_of, escape_segment, is_absolute, join_url, requote, route_of

__all__ = [
    "IDEMPOTENT_METHODS",
    "STANDARD_METHODS",
    "QueryLike",
    "Request",
    "check_header_name",
    "check_headers",
    "checked_method",
    "new_request",
]

QueryLike: TypeAlias = (
    "Mapping[str, str | int | float | Sequence[str | int | float]] | Sequence[tuple[str, str]] | None"
)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EMPTY: Mapping[str, Any] = MappingProxyType({})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})


def _query_pairs(query: QueryLike) -> tuple[tuple[str, str], ...]:
    if not query:
        return ()
    if not isinstance(query, Mapping):
        return tuple((str(k), str(v)) for k, v in query if v is not None)
    pairs: list[tuple[str, str]] = []
    for key, value in query.items():
        values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
        # None means "no value", as in aio-request: the parameter is left out, not sent as "None".
        pairs.extend((str(key), str(item)) for item in values if item is not None)
    return tuple(pairs)


# Not slotted on purpose: a request is copied by every layer that changes it (each attempt, its
# headers, its deadline), and a copy of the instance ``__dict__`` is one C call, where copying
# sixteen slots is sixteen reads and sixteen writes (see ``replace``).
@dataclass(frozen=True, kw_only=True)
class Request:
    """One call: a method and a URL, absolute or relative to the client's endpoint.

    ``url`` may be a template (``"users/{id}"``) filled from ``path_parameters``; the template is
    what metrics and logs call the route, so it never carries values. Parameters are
    percent-encoded unless ``escape_path_parameters=False``. ``deadline``, ``priority``,
    ``attempt`` (1, 2, ...) and ``attempt_kind`` (``"first"``, ``"retry"`` or ``"hedge"``) are
    per-call data that middlewares fill in; ``extensions`` is room for more.
    Change a request with ``replace`` (or ``update_headers`` / ``extend_headers``): it is never
    mutated, since retry and hedging send the same request several times at once.
    """

    method: str
    url: str
    headers: Headers = field(default_factory=Headers)
    path_parameters: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    query_parameters: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    allow_redirects: bool = True
    max_redirects: int = 10
    escape_path_parameters: bool = True
    endpoint: str | None = None
    deadline: Deadline | None = None
    priority: Priority | None = None
    attempt: int = 1
    attempt_kind: str = "first"
    retryable: bool = False
    extensions: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        method = checked_method(self.method)
        if not isinstance(self.body, bytes):
            raise InvalidRequestError(f"body must be bytes, got {type(self.body).__name__}")
        if self.max_redirects < 0:
            raise InvalidRequestError(f"max_redirects must be >= 0, got {self.max_redirects}")
        object.__setattr__(self, "method", method)
        if not isinstance(self.headers, Headers):
            object.__setattr__(self, "headers", Headers(self.headers))
        check_headers(self.headers, request=self)
        if not isinstance(self.query_parameters, tuple):
            object.__setattr__(self, "query_parameters", _query_pairs(self.query_parameters))

    @property
    def route(self) -> str:
        """The URL template without scheme, host, userinfo, query or fragment: safe as a metric
        label (``users/{id}``; the path alone for an absolute URL)."""
        return route_of(self.url)

    @property
    def authority(self) -> str:
        """``scheme://host:port`` the request goes to, never userinfo: a circuit key, a metric
        label. The host is lowercased and the default port made explicit. Raises
        ``InvalidRequestError`` for a URL without a usable host or port."""
        target = self.url if is_absolute(self.url) else self.endpoint
        if target is None:
            raise InvalidRequestError(f"relative URL {self.url!r} needs an endpoint", request=self)
        try:
            return authority_of(str(target))
        except ValueError as error:
            raise InvalidRequestError(f"bad port in {str(target)!r}: {error}", request=self) from None

    @property
    def is_idempotent(self) -> bool:
        """Whether sending this request twice is safe: an idempotent method, marked retryable,
        or carrying an ``Idempotency-Key`` header."""
        return self.method in IDEMPOTENT_METHODS or self.retryable or "Idempotency-Key" in self.headers

    def replace(self, **changes: Any) -> Request:
        """A copy with the given fields changed.

        Middlewares call this on every attempt, so changes that need no validation (any field
        but ``method``, ``body``, ``max_redirects`` and ``query_parameters``, and ``headers``
        given as ``Headers``) skip ``__init__`` and copy the fields in one go; others go through
        ``dataclasses.replace``, which checks them.
        """
        for name in changes:  # a loop, not a set operation: a change or two, and no call
            if name not in _FAST_FIELDS or (name == "headers" and type(changes[name]) is not Headers):
                return dataclasses.replace(self, **changes)
        new = _new_request(Request)
        _set(new, "__dict__", {**self.__dict__, **changes})
        return new

    def update_headers(self, headers: Mapping[str, str]) -> Request:
        """A copy where the given headers replace any value of the same name."""
        return self.replace(headers=self.headers.update(check_headers(Headers(headers), request=self)))

    def extend_headers(self, headers: Mapping[str, str]) -> Request:
        """A copy with the given headers added after the existing ones."""
        return self.replace(headers=self.headers.extend(check_headers(Headers(headers), request=self)))

    def with_extension(self, key: str, value: Any) -> Request:
        """A copy with ``extensions[key] = value``."""
        return self.replace(extensions=MappingProxyType({**self.extensions, key: value}))

    def render_path(self) -> str:
        """The URL with path parameters filled in (escaped) and query parameters appended.

        Characters a URL cannot carry as they are (spaces, non-ASCII) are percent-encoded;
        existing ``%XX`` escapes are kept, so the result is ready to send as is.
        """
        url = self.url
        if self.path_parameters:
            url = _PLACEHOLDER.sub(self._fill, url)
        url = requote(url)
        if self.query_parameters:
            url += ("&" if "?" in url else "?") + urlencode(self.query_parameters)
        return url

    def _fill(self, match: re.Match[str]) -> str:
        name = match.group(1)
        value = self.path_parameters.get(name)
        if value is None:
            raise InvalidRequestError(f"no value for path parameter {name!r} in {self.url!r}", request=self)
        value = str(value)
        return escape_segment(value) if self.escape_path_parameters else value

    def absolute_url(self, endpoint: str | None = None) -> str:
        """The full URL to send to; see ``join_url`` for how a relative URL meets the endpoint."""
        return join_url(endpoint if endpoint is not None else self.endpoint, self.render_path(), request=self)


def checked_method(method: object) -> str:
    """``method`` upper-cased, if it is an HTTP token; else ``InvalidRequestError``."""
    upper = method.upper() if isinstance(method, str) else ""
    if not _TOKEN.fullmatch(upper):
        raise InvalidRequestError(f"method must be an HTTP token such as GET, got {method!r}")
    return upper


#: Methods known good as they are: no need to upper-case or match them.
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})


def new_request(fields: dict[str, Any]) -> Request:
    """A ``Request`` of ``fields`` (every field, already checked) without ``__init__``: for the
    builders, which check what they are given themselves."""
    new = _new_request(Request)
    _set(new, "__dict__", fields)
    return new


_FIELDS = tuple(f.name for f in dataclasses.fields(Request))
#: Fields whose new value needs no check or conversion in ``__post_init__`` (``headers`` given as
#: ``Headers``); any other name goes through ``dataclasses.replace``, which checks or refuses it.
_FAST_FIELDS = frozenset(_FIELDS) - {"method", "query_parameters", "body", "max_redirects"}
_new_request = object.__new__
_set = object.__setattr__


_FORBIDDEN_IN_VALUES = re.compile(r"[\r\n\x00]")


def check_header_name(name: object, option: str) -> str:
    """``name`` if it can be a header name (an HTTP token), else ``ValueError`` naming ``option``:
    for options that name a header, checked when they are set, not at the first request."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(f"{option} must be a header name (an HTTP token), got {name!r}")
    return name


def check_headers(headers: Headers, *, request: Request | None = None) -> Headers:
    """``headers``, if every name is an HTTP token and no value holds CR, LF or NUL (which would
    split the header block); else ``InvalidRequestError``, before anything is sent."""
    for name, value in headers.multi_items():
        if not _TOKEN.fullmatch(name):
            raise InvalidRequestError(f"header name must be an HTTP token, got {name!r}", request=request)
        if _FORBIDDEN_IN_VALUES.search(value):
            raise InvalidRequestError(f"header {name!r} holds CR, LF or NUL: {value!r}", request=request)
    return headers
