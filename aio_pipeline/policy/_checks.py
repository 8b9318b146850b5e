"""Option checks shared by every class with options: a wrong value fails at construction with a
``ValueError`` naming the option, never at the first call."""

from __future__ import annotations

import math

from ._budget import RetryBudget
from ._classify import ResponseClassifier

__all__ = ["check_kind", "check_strategy_options", "is_count", "is_seconds", "require"]


def require(name: str, ok: bool, expected: str, value: object) -> None:
    """``ValueError`` naming option ``name`` (which must be ``expected``) unless ``ok``."""
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def is_count(value: object) -> bool:
    """An ``int`` > 0 (a ``bool`` is not a count)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def is_seconds(value: object) -> bool:
    """A finite number of seconds > 0 (a ``bool`` is not a number of seconds)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_kind(name: str, value: object, kind: type) -> None:
    """``ValueError`` naming option ``name`` unless ``value`` is ``None`` or an instance of ``kind``
    (a class passed for an instance, a ratio for a budget...): at construction, not at the first call."""
    if value is not None and not isinstance(value, kind):
        raise ValueError(f"{name} must be a {kind.__name__} instance, got {value!r}")


def check_strategy_options(
    attempts_count: object,
    delays_provider: object,
    max_retry_after: object,
    *,
    classifier: object = None,
    budgets: dict[str, object] | None = None,
) -> None:
    """The options retry and hedging share, checked the same way: ``ValueError`` naming the one
    that is wrong, at construction rather than at the first call."""
    check_kind("classifier", classifier, ResponseClassifier)
    for name, budget in (budgets or {}).items():
        check_kind(name, budget, RetryBudget)
    if isinstance(attempts_count, bool) or not isinstance(attempts_count, int) or attempts_count < 1:
        raise ValueError(f"attempts_count must be an integer >= 1, got {attempts_count!r}")
    if not isinstance(max_retry_after, int | float) or not max_retry_after >= 0:
        raise ValueError(f"max_retry_after must be >= 0 seconds, got {max_retry_after!r}")
    if not callable(delays_provider):
        raise ValueError(f"delays_provider must be callable, got {delays_provider!r}")
