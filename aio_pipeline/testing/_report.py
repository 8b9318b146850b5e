"""The rules a middleware keeps, and the report of a conformance check against them."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["ConformanceReport", "Finding", "Rule"]


class Rule(enum.Enum):
    """The rules every middleware of aio-pipeline keeps, in plain words (the member's value)."""

    REQUEST_UNCHANGED = "does not mutate the request it was given"
    CANCELLATION = "lets cancellation through and leaves no task behind"
    RESPONSES_CLOSED = "closes every response it does not return"
    DEADLINE = "never outlives the deadline"
    CONTEXTVARS = "passes contextvars through"
    REPEATABLE = "works when called several times for one call (retry) and concurrently (hedging)"
    EXCEPTIONS_KEPT = "keeps call_next's exceptions as they are unless it means to map them"


@dataclass(frozen=True, slots=True)
class Finding:
    """One way a middleware broke a ``rule``, seen in one ``scenario`` of the check."""

    rule: Rule
    scenario: str
    message: str

    def __str__(self) -> str:
        return f"[{self.scenario}] {self.message}"


@dataclass(frozen=True, slots=True)
class ConformanceReport:
    """What a conformance check found: ``findings`` (none when the middleware keeps every rule).

    ``side`` is ``"client"`` or ``"server"``; ``not_applicable`` lists the rules that side cannot
    break (a server response holds no connection, so there is nothing to close).
    ``str(report)`` says it all in plain words.
    """

    middleware: str
    side: str
    findings: tuple[Finding, ...]
    not_applicable: tuple[Rule, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether the middleware kept every rule."""
        return not self.findings

    @property
    def broken(self) -> tuple[Rule, ...]:
        """The rules with at least one finding, in the order of ``Rule``."""
        seen = {finding.rule for finding in self.findings}
        return tuple(rule for rule in Rule if rule in seen)

    def findings_for(self, rule: Rule) -> tuple[Finding, ...]:
        """The findings against ``rule``, in the order they were seen."""
        return tuple(finding for finding in self.findings if finding.rule is rule)

    def __str__(self) -> str:
        checked = [rule for rule in Rule if rule not in self.not_applicable]
        if self.ok:
            return f"{self.side} middleware {self.middleware} keeps all {len(checked)} rules"
        lines = [f"{self.side} middleware {self.middleware} breaks {len(self.broken)} of {len(checked)} rules:"]
        for rule in self.broken:
            lines.append(f"- broken: {rule.value}")
            # The same finding in several scenarios is one line naming them all.
            scenarios: dict[str, list[str]] = {}
            for finding in self.findings_for(rule):
                scenarios.setdefault(finding.message, []).append(finding.scenario)
            lines.extend(f"    [{', '.join(names)}] {message}" for message, names in scenarios.items())
        return "\n".join(lines)
