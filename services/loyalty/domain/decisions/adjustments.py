"""Adjustments: points an operator adds or takes away by hand, with a reason."""

from __future__ import annotations

from datetime import datetime

from libs.events.catalog.loyalty import LotDraw, PointsAdjusted
from services.loyalty.commands import AdjustPoints
from services.loyalty.domain.decisions.decision import Decision
from services.loyalty.domain.errors import InsufficientPoints, NothingToAdjust
from services.loyalty.domain.ledger import oldest_first
from services.loyalty.domain.rules import RulesBook, expiry_of


def adjust(d: Decision, command: AdjustPoints, rules: RulesBook, now: datetime) -> None:
    ledger = d.ledger
    if command.adjustment_id in ledger.sources:
        return
    if command.points == 0:
        raise NothingToAdjust()
    draws: list[LotDraw] = []
    expires_at = None
    if command.points < 0:
        available = ledger.available_at(now)
        if available < -command.points:
            raise InsufficientPoints(ledger.customer_id, available, -command.points)
        draws, _ = oldest_first(ledger, -command.points, now)
    else:
        expires_at = expiry_of(rules.at(now), now)
    d.emit(
        PointsAdjusted(
            customer_id=ledger.customer_id,
            adjustment_id=command.adjustment_id,
            points=command.points,
            reason=command.reason,
            by=command.by,
            adjusted_at=now,
            draws=draws,
            expires_at=expires_at,
        )
    )
