"""How a request's URL is built and read: path parameters escaped, relative URLs joined under
the endpoint's path, and the two labels taken from a URL (``authority`` and ``route``)."""

from __future__ import annotations

import functools
import re
from urllib.parse import quote, urlsplit

from ..errors import InvalidRequestError

__all__ = ["authority_of", "check_endpoint", "escape_segment", "is_absolute", "join_url", "requote", "route_of"]

#: Characters a URL may carry as they are; anything else (spaces, non-ASCII) is percent-encoded.
_URL_SAFE = "%:/?#[]@!$&'()*+,;=~"
_NEEDS_QUOTING = re.compile(r"[^A-Za-z0-9\-._~%:/?#\[\]@!$&'()*+,;=]")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def requote(url: str) -> str:
    """``url`` with what it cannot carry as is (spaces, non-ASCII) percent-encoded; existing
    ``%XX`` escapes are kept."""
    return quote(url, safe=_URL_SAFE) if _NEEDS_QUOTING.search(url) else url


def escape_segment(value: str) -> str:
    """Percent-encode a path parameter so it stays one segment: ``/``, ``?``, ``#`` and the
    dot segments ``.`` and ``..`` are all encoded, so a value can never change the path."""
    if value in (".", ".."):
        return value.replace(".", "%2E")
    return quote(value, safe="")


@functools.lru_cache(maxsize=1024)
def authority_of(url: str) -> str:
    # Memoised: metrics, logs and the breaker each ask for it on every attempt, and a process
    # talks to few endpoints. A pure function of a string, bounded: no state to reset.
    parts = urlsplit(url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{port}"


@functools.lru_cache(maxsize=1024)
def route_of(url: str) -> str:
    # Memoised for the same reason: templates are few, and labels are built on every attempt.
    path = urlsplit(url).path if is_absolute(url) else url
    return path.split("?", 1)[0].split("#", 1)[0]


def is_absolute(url: str) -> bool:
    # "://" first: most URLs are relative paths, and urlsplit costs microseconds on a hot path.
    if "://" not in url:
        return False
    try:
        return bool(urlsplit(url).scheme)
    except ValueError:  # "http://[::1": absolute, and refused as invalid where it is parsed
        return True


def check_endpoint(endpoint: object) -> str:
    """``endpoint`` as text, if it is an absolute http(s) URL with a host and a usable port;
    else ``InvalidRequestError`` naming it. For constructors: a bad endpoint fails there."""
    text = str(endpoint)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018  (parsing it is the check)
    except ValueError as error:
        raise InvalidRequestError(f"endpoint must be an absolute http(s) URL, got {text!r}: {error}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequestError(f"endpoint must be an absolute http(s) URL, got {text!r}")
    return text


def join_url(endpoint: object, path: str, *, request: object = None) -> str:
    """Join ``path`` onto ``endpoint``.

    An absolute ``path`` (with a scheme) is used as is. A relative one is always appended under
    the endpoint's path, whether or not either side has a slash at the join:
    ``http://host/api`` + ``users/1`` and ``http://host/api/`` + ``/users/1`` both give
    ``http://host/api/users/1``. The endpoint's own query and fragment are dropped.
    """
    if is_absolute(path):
        return path
    if endpoint is None:
        raise InvalidRequestError(f"relative URL {path!r} needs an endpoint", request=request)
    parts = urlsplit(str(endpoint))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidRequestError(f"endpoint must be an absolute http(s) URL, got {str(endpoint)!r}", request=request)
    base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
    if not path or path[0] in "?#":
        return f"{parts.scheme}://{parts.netloc}{parts.path or '/'}{path}"
    return f"{base}/{path.lstrip('/')}"
