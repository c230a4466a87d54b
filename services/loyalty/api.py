"""The loyalty HTTP API under /api/v1: parse, authorise, call the handler, answer.

The tenant comes from the token only; a customer this tenant does not know is a
404. A customer's points are read with ``customers:read``; redeeming, adjusting,
checking in and running the programme each need their own permission
(``libs/auth/roles.py``). Domain errors become their status in the app factory.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Response, status
from pydantic import ConfigDict, Field

from libs.auth import Principal, require
from libs.events.catalog.loyalty import MAX_AMOUNT, PointsEarned, ProgramRules, RewardDefined
from libs.platform.dependencies import Body, IdempotencyKey, IfMatch, etag_for
from libs.platform.errors import NotFound, Unprocessable
from libs.platform.routing import REPLAYED, ServiceRouter
from libs.platform.types import Instant
from services.loyalty import handlers, read_model
from services.loyalty.commands import AdjustPoints, CancelRedemption, CheckIn, RedeemReward
from services.loyalty.domain.views import account_view
from services.loyalty.handlers import Loyalty, Outcome, programme

router = ServiceRouter(prefix="/api/v1", tags=["loyalty"])

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
CustomerId = Annotated[str, Path(pattern=ID_PATTERN, description="the customer's id")]
# Shorter than a customer id: the reward's stream id is "#reward/<id>".
RewardId = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,47}$")]
RedemptionId = Annotated[str, Path(pattern=ID_PATTERN)]
Reader = Annotated[Principal, Depends(require("customers:read"))]
Manager = Annotated[Principal, Depends(require("loyalty:manage"))]
Redeemer = Annotated[Principal, Depends(require("loyalty:redeem"))]
Adjuster = Annotated[Principal, Depends(require("loyalty:adjust"))]
CheckInCaller = Annotated[Principal, Depends(require("loyalty:check_in"))]


async def loyalty_of(request: Request) -> Loyalty:
    loyalty: Loyalty = request.app.state.loyalty
    return loyalty


LoyaltyDep = Annotated[Loyalty, Depends(loyalty_of)]


class RulesBody(ProgramRules):
    model_config = ConfigDict(extra="forbid", frozen=True)
    # From when the rules apply (orders placed earlier earn by the earlier rules).
    effective_from: Instant | None = None


class RewardBody(Body):
    name: str = Field(min_length=1, max_length=200)
    # Bounded by what the ledger's BIGINT columns hold, with room to add up.
    cost: int = Field(ge=1, le=MAX_AMOUNT)
    stock: int | None = Field(default=None, ge=0, le=MAX_AMOUNT)
    valid_from: Instant | None = None
    valid_until: Instant | None = None
    active: bool = True


class RedemptionBody(Body):
    reward_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,47}$")


class CancellationBody(Body):
    reason: str = Field(default="", max_length=500)


class AdjustmentBody(Body):
    points: int = Field(ge=-10_000_000, le=10_000_000)
    reason: str = Field(min_length=1, max_length=500)


class CustomerUnknown(NotFound):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"no customer {customer_id}", customer_id=customer_id)


async def _known(loyalty: Loyalty, tenant_id: str, customer_id: str) -> None:
    if not await handlers.is_known(loyalty, tenant_id, customer_id):
        raise CustomerUnknown(customer_id)


def _answer(outcome: Outcome, response: Response) -> None:
    response.headers["ETag"] = etag_for(outcome.ledger.version)


# --- a customer's points ----------------------------------------------------------------


@router.get("/customers/{customer_id}/loyalty")
async def customer_loyalty(
    customer_id: CustomerId,
    principal: Reader,
    loyalty: LoyaltyDep,
    response: Response,
    as_of: Annotated[Instant | None, Query(description="as it stood then")] = None,
    expiring_within_days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> dict[str, Any]:
    ledger, rules, known = await handlers.ledger_as_of(
        loyalty, principal.tenant_id, customer_id, as_of
    )
    if not known:
        raise CustomerUnknown(customer_id)
    response.headers["ETag"] = etag_for(ledger.version)
    at = as_of or loyalty.clock()
    return account_view(ledger, rules, at, expiring_within_days=expiring_within_days)


@router.get("/customers/{customer_id}/loyalty/ledger")
async def customer_ledger(
    customer_id: CustomerId,
    principal: Reader,
    loyalty: LoyaltyDep,
    # le: a stream version is a 64-bit integer in every database (larger was a 500).
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="the last version already seen")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    await _known(loyalty, principal.tenant_id, customer_id)
    async with loyalty.engine.connect() as conn:
        rows = await read_model.ledger_lines(
            conn, principal.tenant_id, customer_id, after=after, limit=limit
        )
    lines = [
        {
            "version": r["version"],
            "type": r["type"],
            "points": r["points"],
            "balance_after": r["balance_after"],
            "source_event_id": r["source_event_id"],
            "reason": _reason(r["data"]),
            "at": r["recorded_at"].isoformat(),
            "detail": r["data"],
        }
        for r in rows
    ]
    return {
        "customer_id": customer_id,
        "lines": lines,
        "next_after": lines[-1]["version"] if len(lines) == limit else None,
    }


def _reason(data: dict[str, Any]) -> str:
    for key in ("explanation", "reason"):
        if data.get(key):
            return str(data[key])
    return ""


@router.post("/customers/{customer_id}/loyalty/redemptions")
async def redeem(
    customer_id: CustomerId,
    body: RedemptionBody,
    principal: Redeemer,
    loyalty: LoyaltyDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    if idempotency_key is None:
        raise Unprocessable("Idempotency-Key", "required: one key per redemption")
    await _known(loyalty, principal.tenant_id, customer_id)
    command = RedeemReward(str(uuid.uuid4()), idempotency_key, body.reward_id, principal.subject)
    outcome = await handlers.execute(loyalty, principal.tenant_id, customer_id, command)
    redemption_id = outcome.ledger.keys[idempotency_key]
    redemption = outcome.ledger.redemptions[redemption_id]
    response.status_code = status.HTTP_201_CREATED if outcome.events else status.HTTP_200_OK
    _answer(outcome, response)
    return {
        "redemption_id": redemption_id,
        "reward_id": redemption.reward_id,
        "points": redemption.points,
        "cancelled": redemption.cancelled,
        "balance": outcome.ledger.balance,
    }


@router.post("/customers/{customer_id}/loyalty/redemptions/{redemption_id}/cancel")
async def cancel_redemption(
    customer_id: CustomerId,
    redemption_id: RedemptionId,
    principal: Redeemer,
    loyalty: LoyaltyDep,
    response: Response,
    body: CancellationBody | None = None,
) -> dict[str, Any]:
    await _known(loyalty, principal.tenant_id, customer_id)
    reason = body.reason if body else ""
    command = CancelRedemption(redemption_id, reason, principal.subject)
    outcome = await handlers.execute(loyalty, principal.tenant_id, customer_id, command)
    _answer(outcome, response)
    return {"redemption_id": redemption_id, "cancelled": True, "balance": outcome.ledger.balance}


@router.post("/customers/{customer_id}/loyalty/adjustments", status_code=201, responses=REPLAYED)
async def adjust(
    customer_id: CustomerId,
    body: AdjustmentBody,
    principal: Adjuster,
    loyalty: LoyaltyDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    await _known(loyalty, principal.tenant_id, customer_id)
    adjustment_id = f"adjustment:{idempotency_key or uuid.uuid4()}"
    command = AdjustPoints(adjustment_id, body.points, body.reason, principal.subject)
    outcome = await handlers.execute(loyalty, principal.tenant_id, customer_id, command)
    if not outcome.events:
        response.status_code = status.HTTP_200_OK
    _answer(outcome, response)
    return {"adjustment_id": adjustment_id, "balance": outcome.ledger.balance}


@router.post("/customers/{customer_id}/loyalty/check-ins", status_code=201)
async def check_in(
    customer_id: CustomerId, principal: CheckInCaller, loyalty: LoyaltyDep, response: Response
) -> dict[str, Any]:
    await _known(loyalty, principal.tenant_id, customer_id)
    outcome = await handlers.execute(loyalty, principal.tenant_id, customer_id, CheckIn())
    _answer(outcome, response)
    earned = sum(e.points for e in outcome.events if isinstance(e, PointsEarned))
    return {
        "day": outcome.ledger.last_check_in.isoformat() if outcome.ledger.last_check_in else None,
        "streak": outcome.ledger.streak,
        "points": earned,
        "balance": outcome.ledger.balance,
    }


# --- the programme ------------------------------------------------------------------------


@router.put("/loyalty/rules")
async def set_rules(
    body: RulesBody,
    principal: Manager,
    loyalty: LoyaltyDep,
    response: Response,
    expected: IfMatch,
) -> dict[str, Any]:
    rules = ProgramRules.model_validate(body.model_dump(exclude={"effective_from"}))
    _check_rules(rules)
    version = await programme.set_rules(
        loyalty,
        principal.tenant_id,
        rules,
        principal.subject,
        effective_from=body.effective_from,
        expected=expected,
    )
    response.headers["ETag"] = etag_for(version)
    return {"rules": rules.model_dump(mode="json"), "version": version}


def _check_rules(rules: ProgramRules) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(rules.time_zone)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long to look up
        raise Unprocessable("time_zone", f"{rules.time_zone!r} is not an IANA time zone") from None
    if not rules.tiers:
        raise Unprocessable("tiers", "at least one tier")
    names = [t.name for t in rules.tiers]
    if len(set(names)) != len(names):
        raise Unprocessable("tiers", "tier names must differ")
    if min(t.threshold for t in rules.tiers) != 0:
        raise Unprocessable("tiers", "the lowest tier's threshold must be 0")
    for campaign in rules.campaigns:
        if campaign.ends_at <= campaign.starts_at:
            raise Unprocessable("campaigns", f"{campaign.campaign_id} ends before it starts")


@router.get("/loyalty/rules")
async def rules(principal: Reader, loyalty: LoyaltyDep, response: Response) -> dict[str, Any]:
    book = await programme.current_rules(loyalty, principal.tenant_id)
    response.headers["ETag"] = etag_for(book.version)
    return {"rules": book.current.model_dump(mode="json"), "version": book.version}


@router.put(
    "/loyalty/rewards/{reward_id}",
    responses={201: {"description": "The reward was defined by this request"}},
)
async def define_reward(
    reward_id: RewardId,
    body: RewardBody,
    principal: Manager,
    loyalty: LoyaltyDep,
    response: Response,
    expected: IfMatch,
) -> dict[str, Any]:
    if body.valid_from and body.valid_until and body.valid_until <= body.valid_from:
        raise Unprocessable("valid_until", "must be after valid_from")
    definition = RewardDefined(reward_id=reward_id, by=principal.subject, **body.model_dump())
    version, created = await programme.define_reward(
        loyalty, principal.tenant_id, definition, expected=expected
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["ETag"] = etag_for(version)
    return await _reward_view(loyalty, principal.tenant_id, reward_id)


@router.get("/loyalty/rewards/{reward_id}")
async def reward(
    reward_id: RewardId, principal: Reader, loyalty: LoyaltyDep, response: Response
) -> dict[str, Any]:
    view = await _reward_view(loyalty, principal.tenant_id, reward_id)
    response.headers["ETag"] = etag_for(view["version"])
    return view


async def _reward_view(loyalty: Loyalty, tenant_id: str, reward_id: str) -> dict[str, Any]:
    found = await programme.reward_of(loyalty, tenant_id, reward_id)
    if found.definition is None:
        raise NotFound(f"no reward {reward_id}", reward_id=reward_id)
    terms = found.definition.model_dump(mode="json", exclude={"by"})
    return {**terms, "stock_left": found.stock_left, "version": found.version}


@router.get("/loyalty/statistics")
async def statistics(principal: Reader, loyalty: LoyaltyDep) -> dict[str, Any]:
    book = await programme.current_rules(loyalty, principal.tenant_id)
    async with loyalty.engine.connect() as conn:
        figures = await read_model.statistics(conn, principal.tenant_id)
    lowest = min(book.current.tiers, key=lambda t: t.threshold).name
    per_tier: dict[str, int] = {}
    for tier, count in figures["members_per_tier"]:
        per_tier[tier or lowest] = per_tier.get(tier or lowest, 0) + count
    return {**figures, "members_per_tier": per_tier, "as_of": _now(loyalty).isoformat()}


def _now(loyalty: Loyalty) -> datetime:
    return loyalty.clock()
