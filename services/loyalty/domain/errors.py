"""What the PointsLedger refuses, each with the HTTP status it means."""

from __future__ import annotations

from datetime import date

from libs.platform.errors import Conflict, NotFound, Unprocessable


class InsufficientPoints(Conflict):
    def __init__(self, customer_id: str, available: int, wanted: int) -> None:
        super().__init__(
            f"customer {customer_id} has {available} points available, {wanted} needed",
            customer_id=customer_id,
            available=available,
            wanted=wanted,
        )


class RewardNotFound(NotFound):
    def __init__(self, reward_id: str) -> None:
        super().__init__(f"no reward {reward_id}", reward_id=reward_id)


class RewardUnavailable(Conflict):
    def __init__(self, reward_id: str, why: str) -> None:
        super().__init__(f"reward {reward_id} {why}", reward_id=reward_id)


class OutOfStock(Conflict):
    def __init__(self, reward_id: str) -> None:
        super().__init__(f"reward {reward_id} is out of stock", reward_id=reward_id)


class IdempotencyKeyReused(Conflict):
    def __init__(self, key: str, redemption_id: str) -> None:
        super().__init__(
            f"idempotency key {key!r} was used for another redemption",
            redemption_id=redemption_id,
        )


class RedemptionNotFound(NotFound):
    def __init__(self, redemption_id: str) -> None:
        super().__init__(f"no redemption {redemption_id}", redemption_id=redemption_id)


class AlreadyCheckedIn(Conflict):
    def __init__(self, day: date) -> None:
        super().__init__(f"already checked in on {day.isoformat()}", day=day.isoformat())


class NothingToAdjust(Unprocessable):
    def __init__(self) -> None:
        super().__init__("points", "an adjustment must add or take at least one point")


class LedgerMoved(Conflict):
    def __init__(self, customer_id: str, survivor_id: str) -> None:
        super().__init__(
            f"customer {customer_id} was merged into {survivor_id}", survivor_id=survivor_id
        )
