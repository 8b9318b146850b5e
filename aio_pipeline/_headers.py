"""An immutable, case-insensitive header collection that keeps repeated headers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeAlias, overload

__all__ = ["Headers", "HeadersLike"]

HeadersLike: TypeAlias = "Mapping[str, str] | Iterable[tuple[str, str]] | None"


class Headers(Mapping[str, str]):
    """HTTP headers: look-ups ignore case, names keep the case they were given.

    ``headers[name]`` is the first value; ``getall(name)`` every value (``Set-Cookie``);
    ``multi_items()`` every pair in order, as sent. Changing methods return a new ``Headers``.
    """

    __slots__ = ("_first", "_items")
    _items: tuple[tuple[str, str], ...]
    _first: dict[str, str]

    def __init__(self, headers: HeadersLike = None) -> None:
        if isinstance(headers, Headers):
            self._items, self._first = headers._items, headers._first  # both immutable: share
            return
        if headers is None:
            items: tuple[tuple[str, str], ...] = ()
        elif isinstance(headers, Mapping):
            items = tuple((str(k), str(v)) for k, v in headers.items())
        else:
            items = tuple((str(k), str(v)) for k, v in headers)
        self._init(items)

    def _init(self, items: tuple[tuple[str, str], ...]) -> None:
        first: dict[str, str] = {}
        for name, value in items:
            first.setdefault(name.lower(), value)
        self._items = items
        self._first = first

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        """Headers from pairs already known to be ``str``: a transport's response headers.

        Skips the conversion the constructor does, which is most of its cost on a hot path.
        """
        headers = cls.__new__(cls)
        headers._init(tuple(pairs))
        return headers

    def __getitem__(self, name: str) -> str:
        return self._first[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for name, _ in self._items:
            if name.lower() not in seen:
                seen.add(name.lower())
                yield name

    def __len__(self) -> int:
        return len(self._first)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._lowered() == other._lowered()
        if isinstance(other, Mapping):
            return self._first == {str(k).lower(): v for k, v in other.items()}
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    def _lowered(self) -> list[tuple[str, str]]:
        return [(name.lower(), value) for name, value in self._items]

    @overload
    def getall(self, name: str) -> list[str]: ...
    @overload
    def getall(self, name: str, default: list[str]) -> list[str]: ...
    def getall(self, name: str, default: list[str] | None = None) -> list[str]:
        """Every value of ``name`` in order; ``default`` (or ``[]``) when there is none."""
        key = name.lower()
        values = [value for item_name, value in self._items if item_name.lower() == key]
        return values or (default if default is not None else [])

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair in order, repeated names included."""
        return list(self._items)

    def update(self, headers: HeadersLike) -> Headers:
        """A copy where every name in ``headers`` replaces all values of that name."""
        new = Headers(headers)
        if not new:
            return self
        kept = [(n, v) for n, v in self._items if n.lower() not in new._first]
        return Headers.from_pairs([*kept, *new._items])

    def extend(self, headers: HeadersLike) -> Headers:
        """A copy with the pairs of ``headers`` appended after the existing ones."""
        new = Headers(headers)
        return Headers.from_pairs([*self._items, *new._items]) if new else self

    def without(self, *names: str) -> Headers:
        """A copy without any value of the given names."""
        drop = {name.lower() for name in names}
        if drop.isdisjoint(self._first):
            return self
        return Headers.from_pairs([(n, v) for n, v in self._items if n.lower() not in drop])
