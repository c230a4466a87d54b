"""How every figure answers: its value, how it was computed, and the rows behind it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Answer:
    """A figure as computed: ``summary`` (the headline numbers), ``method`` (a sentence
    saying how), ``table`` (its rows: per period, per owner, ...) and ``customers``
    (the drill-down: one row per customer behind it, with its own numbers)."""

    figure: str
    summary: dict[str, Any]
    method: str
    table: list[dict[str, Any]] = field(default_factory=list)
    customers: list[dict[str, Any]] = field(default_factory=list)


def share(part: float, whole: float) -> float | None:
    """``part / whole`` rounded for display; None when there is nothing to divide."""
    return round(part / whole, 6) if whole else None
