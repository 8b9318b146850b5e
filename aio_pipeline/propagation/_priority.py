"""Request priority, propagated to callees in ``X-Request-Priority``."""

from __future__ import annotations

import enum

__all__ = ["Priority"]


class Priority(enum.StrEnum):
    """How much a request matters when a server has to choose; the wire value is the string."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @classmethod
    def parse(cls, value: str | None) -> Priority | None:
        """Tolerant parse: case-insensitive, whitespace trimmed; unknown or absent -> ``None``."""
        if value is None:
            return None
        exact = _BY_NAME.get(value)  # as sent, the usual case
        return exact if exact is not None else _BY_NAME.get(value.strip().lower())


_BY_NAME = {priority.value: priority for priority in Priority}
