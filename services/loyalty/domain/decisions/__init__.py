"""The PointsLedger's rules: ``decide(command, ledger, rules, now) -> events`` (pure).

Every decision first expires the lots that are due at ``now`` (``expiry``), then hands
the command to its family: ``earning`` (orders, bonuses), ``clawbacks`` (refunds and
cancellations), ``referrals``, ``redemptions``, ``adjustments``, ``check_ins``,
``tiers`` and ``merges``. A decision works on a copy of the ledger (``decision``),
applying each event it decides as it goes, so later steps see the earlier ones.
"""

from __future__ import annotations

from datetime import datetime

from libs.events.catalog import DomainEvent
from services.loyalty.commands import (
    AdjustPoints,
    CancelRedemption,
    CheckIn,
    ClawBackCancellation,
    ClawBackRefund,
    EarnBonus,
    EarnForOrder,
    EarnSurveyBonus,
    ExpirePoints,
    LedgerCommand,
    RecordReferral,
    RedeemReward,
    TransferLedgerOut,
)
from services.loyalty.domain.decisions.adjustments import adjust
from services.loyalty.domain.decisions.check_ins import check_in
from services.loyalty.domain.decisions.clawbacks import claw_back
from services.loyalty.domain.decisions.decision import Decision, lot_id
from services.loyalty.domain.decisions.earning import (
    earn,
    earn_bonus,
    earn_for_order,
    recover_owed,
    survey_bonus,
)
from services.loyalty.domain.decisions.expiry import expire_due, next_due
from services.loyalty.domain.decisions.merges import transfer_in, transfer_out
from services.loyalty.domain.decisions.redemptions import (
    RESTORED_LOT_DAYS,
    cancel_redemption,
    redeem,
)
from services.loyalty.domain.decisions.referrals import (
    record_referral,
    referral_bonus,
    settle_referral,
)
from services.loyalty.domain.decisions.tiers import qualifying_spend, retier
from services.loyalty.domain.errors import LedgerMoved
from services.loyalty.domain.ledger import Ledger, Reward
from services.loyalty.domain.rules import RulesBook

__all__ = [
    "CALLER_COMMANDS",
    "RESTORED_LOT_DAYS",
    "Decision",
    "adjust",
    "cancel_redemption",
    "check_in",
    "claw_back",
    "decide",
    "earn",
    "earn_bonus",
    "earn_for_order",
    "expire_due",
    "lot_id",
    "next_due",
    "qualifying_spend",
    "record_referral",
    "recover_owed",
    "redeem",
    "referral_bonus",
    "retier",
    "settle_referral",
    "survey_bonus",
    "transfer_in",
    "transfer_out",
]

# What a person asks of one customer's ledger: refused once the customer was merged away
# (other services' events about the duplicate follow it to the survivor instead).
CALLER_COMMANDS = (RedeemReward, CancelRedemption, AdjustPoints, CheckIn)


def decide(
    command: LedgerCommand,
    ledger: Ledger,
    rules: RulesBook,
    now: datetime,
    *,
    reward: Reward | None = None,
) -> list[DomainEvent]:
    if ledger.merged_into is not None and isinstance(command, CALLER_COMMANDS):
        raise LedgerMoved(ledger.customer_id, ledger.merged_into)
    d = Decision(ledger)
    expire_due(d, now)
    match command:
        case EarnForOrder():
            earn_for_order(d, command, rules, now)
        case ClawBackRefund() | ClawBackCancellation():
            claw_back(d, command, rules, now)
        case EarnBonus():
            earn_bonus(d, command, rules, now)
        case EarnSurveyBonus():
            earn_bonus(d, survey_bonus(command, rules), rules, now)
        case RecordReferral():
            record_referral(d, command, rules)
        case RedeemReward():
            redeem(d, command, reward, now)
        case CancelRedemption():
            cancel_redemption(d, command, now)
        case AdjustPoints():
            adjust(d, command, rules, now)
        case CheckIn():
            check_in(d, rules, now)
        case ExpirePoints():
            retier(d, rules, now, "window")
        case TransferLedgerOut():
            if command.source_event_id not in d.ledger.sources and d.ledger.merged_into is None:
                d.emit(transfer_out(d.ledger, command))
    return d.events
