"""Claw-backs: the points an order earned, taken back when it is refunded (in part or
in full) or cancelled; from its own lot first, then the oldest others."""

from __future__ import annotations

from datetime import datetime

from libs.events.catalog.loyalty import LotDraw, PointsClawedBack
from services.loyalty.commands import ClawBackCancellation, ClawBackRefund
from services.loyalty.domain.decisions.decision import Decision
from services.loyalty.domain.decisions.tiers import retier
from services.loyalty.domain.ledger import oldest_first
from services.loyalty.domain.rules import RulesBook


def claw_back(
    d: Decision, command: ClawBackRefund | ClawBackCancellation, rules: RulesBook, now: datetime
) -> None:
    ledger = d.ledger
    order = ledger.orders.get(command.order_id)
    if command.source_event_id in ledger.sources or order is None or order.cancelled:
        return  # seen already, or an order that earned nothing here
    if isinstance(command, ClawBackRefund):
        refunded = min(order.refunded + max(command.amount, 0), order.amount) - order.refunded
        refund_id: str | None = command.refund_id
    else:
        refunded, refund_id = order.amount - order.refunded, None
    total_refunded = order.refunded + refunded
    # Cumulative, so partial refunds round once in total, never drifting: a full
    # refund takes back exactly what the order earned.
    due = (
        order.points
        if refund_id is None or total_refunded >= order.amount
        else order.points * total_refunded // order.amount
    )
    wanted = max(due - order.clawed, 0)
    own = ledger.lot(order.lot_id) if ledger.has_lot(order.lot_id) else None
    from_own = min(own.remaining, wanted) if own is not None else 0
    expired = own.expired_points - order.forgiven if own is not None else 0
    forgiven = min(wanted - from_own, max(expired, 0))
    draws = [LotDraw(lot_id=order.lot_id, points=from_own)] if from_own else []
    others, uncovered = oldest_first(ledger, wanted - from_own - forgiven, None, skip=order.lot_id)
    draws += others
    drawn = sum(draw.points for draw in draws)
    policy = rules.at(now).shortfall
    owed = uncovered if policy == "owed" else 0
    explanation = f"{refunded} of {order.amount} refunded: {due} of {order.points} points due back"
    if forgiven:
        explanation += f"; {forgiven} had already expired"
    if uncovered:
        explanation += (
            f"; {uncovered} already spent, recorded as owed"
            if owed
            else f"; {uncovered} already spent, the balance goes below zero"
        )
    d.emit(
        PointsClawedBack(
            customer_id=ledger.customer_id,
            order_id=order.order_id,
            source_event_id=command.source_event_id,
            refund_id=refund_id,
            refunded_amount=refunded,
            points=drawn + (0 if owed else uncovered),
            owed=owed,
            forgiven=forgiven,
            draws=draws,
            explanation=explanation,
        )
    )
    retier(d, rules, now, "refund" if refund_id is not None else "cancellation")
