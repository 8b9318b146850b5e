"""``Headers``: immutable, case-insensitive, multi-valued HTTP headers, on ``multidict``.

multidict is aiohttp's own C-accelerated header store (and the type aio-request's users compare
headers against), so our headers are its read-only ``CIMultiDictProxy`` with a few methods that
return changed copies, and a response's headers are the proxy the HTTP library already built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["Headers", "HeadersLike"]

HeadersLike: TypeAlias = "Mapping[str, str] | Iterable[tuple[str, str]] | None"


# Typed loosely: multidict 6 and 7 declare them differently, and only the C behaviour matters.
_proxy_new: Callable[..., Any] = CIMultiDictProxy.__new__
_proxy_init: Callable[..., Any] = CIMultiDictProxy.__init__


class Headers(CIMultiDictProxy[str]):
    """HTTP headers that never change: look-ups ignore case, names keep the case they were given.

    A ``multidict.CIMultiDictProxy``: ``headers[name]`` and ``get`` give the first value,
    ``getall(name)`` every value in order (``Set-Cookie``; ``KeyError`` when there is none,
    unless a default is given), ``items()`` every pair as sent, and it equals any multidict with
    the same pairs. ``update``, ``extend``, ``replaced`` and ``without`` return a new ``Headers``.

    Built from a mapping or ``(name, value)`` pairs (names and values taken as ``str``), from
    another ``Headers`` (shared: neither can change) or from a ``CIMultiDictProxy`` (taken as
    the read-only view it is, as a transport does with its library's response headers); a
    mutable ``CIMultiDict`` is copied, so its owner's later changes do not show.
    """

    __slots__ = ()

    def __init__(self, headers: HeadersLike = None) -> None:
        if isinstance(headers, CIMultiDictProxy):
            super().__init__(headers)
        elif headers is None:
            super().__init__(CIMultiDict())
        elif isinstance(headers, CIMultiDict):
            super().__init__(headers.copy())
        elif isinstance(headers, Mapping):
            super().__init__(CIMultiDict((str(name), str(value)) for name, value in headers.items()))
        else:
            super().__init__(CIMultiDict((str(name), str(value)) for name, value in headers))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        """Headers from pairs already known to be ``str``: no conversion."""
        return cls(CIMultiDictProxy(CIMultiDict(pairs)))

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair in order, repeated names included."""
        return list(self.items())

    def update(self, headers: HeadersLike) -> Headers:
        """A copy where every name in ``headers`` replaces all values of that name, where its
        first value was (as ``CIMultiDict.update`` does, which aio-request's requests use)."""
        new = headers if isinstance(headers, Headers) else Headers(headers)
        if not new:
            return self
        changed = self.copy()
        changed.update(new)
        return Headers(CIMultiDictProxy(changed))

    def extend(self, headers: HeadersLike) -> Headers:
        """A copy with the pairs of ``headers`` added after the existing ones."""
        new = headers if isinstance(headers, Headers) else Headers(headers)
        if not new:
            return self
        changed = self.copy()
        changed.extend(new)
        return Headers(CIMultiDictProxy(changed))

    def replaced(self, values: Mapping[str, str | None]) -> Headers:
        """A copy where each name of ``values`` has that one value in place of all it had
        (kept where its first value was), or none at all where the value is ``None``.

        Per attempt on the hot path (the system headers), so the copy is wrapped without the
        checks of ``__init__``: nothing else holds the new multidict."""
        changed = self.copy()
        for name, value in values.items():
            if value is None:
                changed.popall(name, None)
            else:
                changed[name] = value
        headers: Headers = _proxy_new(Headers, changed)
        _proxy_init(headers, changed)
        return headers

    def without(self, *names: str) -> Headers:
        """A copy without any value of the given names."""
        if not any(name in self for name in names):
            return self
        changed = self.copy()
        for name in names:
            changed.popall(name, None)
        return Headers(CIMultiDictProxy(changed))
