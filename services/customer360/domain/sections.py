"""The sales section's building blocks: JSON-ready lists of items, replaced, never
mutated (a view is a value), and amounts in minor units as a reader writes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from services.customer360.domain.view import CustomerView

# ISO 4217 minor units where they are not 2 (the amounts travel in minor units).
_MINOR_UNITS = {
    **dict.fromkeys(
        (
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}


def money(amount: int, currency: str) -> str:
    """``129900, "CNY"`` -> ``"1,299.00 CNY"``: minor units as a reader writes them."""
    digits = _MINOR_UNITS.get(currency, 2)
    value = abs(amount) / 10**digits
    sign = "-" if amount < 0 else ""
    return f"{sign}{value:,.{digits}f} {currency}"


def with_sections(view: CustomerView, **sections: Any) -> CustomerView:
    return replace(view, sections={**view.sections, **sections})


def find(items: Iterable[Mapping[str, Any]], key: str, value: str) -> Mapping[str, Any] | None:
    return next((item for item in items if item[key] == value), None)


def put(
    items: list[dict[str, Any]],
    key: str,
    item: dict[str, Any],
    *,
    order_by: str,
    newest_first: bool = True,
) -> list[dict[str, Any]]:
    kept = [i for i in items if i[key] != item[key]]
    return sorted_by([*kept, item], order_by, newest_first=newest_first)


def patch(
    items: list[dict[str, Any]], key: str, item_id: str, /, **changes: Any
) -> list[dict[str, Any]]:
    """``items`` with ``changes`` made to the one whose ``key`` is ``item_id``."""
    return [{**i, **changes} if i[key] == item_id else i for i in items]


def without(items: list[dict[str, Any]], key: str, value: str) -> list[dict[str, Any]]:
    return [i for i in items if i[key] != value]


def sorted_by(
    items: list[dict[str, Any]], order_by: str, *, newest_first: bool = True
) -> list[dict[str, Any]]:
    # UTC ISO 8601 times (``_at``), or dates, sort as their values do.
    return sorted(items, key=lambda i: str(i[order_by] or ""), reverse=newest_first)


def count(
    purchases: Mapping[str, Any],
    currency: str,
    *,
    orders: int = 0,
    spent: int = 0,
    refunded: int = 0,
    placed_at: datetime | None = None,
) -> dict[str, Any]:
    """The purchase figures in ``currency`` after one change (amounts never mix currencies)."""
    figures = dict(
        purchases.get(currency)
        or {
            "orders": 0,
            "spent": 0,
            "refunded": 0,
            "first_order_at": None,
            "last_order_at": None,
        }
    )
    figures["orders"] += orders
    figures["spent"] += spent
    figures["refunded"] += refunded
    if placed_at is not None:
        at = utc_iso(placed_at)
        if figures["first_order_at"] is None or at < figures["first_order_at"]:
            figures["first_order_at"] = at
        if figures["last_order_at"] is None or at > figures["last_order_at"]:
            figures["last_order_at"] = at
    return {**purchases, currency: figures}


def iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def utc_iso(value: datetime) -> str:
    """A time as sortable text: ISO 8601 in UTC (the events may carry any offset)."""
    return value.astimezone(UTC).isoformat()
