"""Domain errors shared by the pipeline's aggregates; each maps to one HTTP status."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from libs.platform.errors import NotFound, Unprocessable

# Clocks of an ERP or a phone disagree with ours by a little; more is a mistake.
CLOCK_SKEW = timedelta(minutes=5)


class UnknownReference(Unprocessable):
    """A command names a customer, lead or deal that does not exist in the tenant."""

    def __init__(self, field: str, kind: str, reference: str) -> None:
        super().__init__(field, f"no {kind} {reference} in this tenant")


class UnknownCustomer(UnknownReference):
    def __init__(self, customer_id: str, field: str = "customer_id") -> None:
        super().__init__(field, "customer", customer_id)
        self.customer_id = customer_id


class TimeInTheFuture(Unprocessable):
    def __init__(self, field: str, at: datetime | date) -> None:
        super().__init__(field, f"{at.isoformat()} is in the future")


class AggregateNotFound(NotFound):
    def __init__(self, kind: str, aggregate_id: str) -> None:
        super().__init__(f"no {kind} {aggregate_id}")
        self.extra[f"{kind}_id"] = aggregate_id


def not_in_future(field: str, at: datetime, now: datetime) -> datetime:
    if at > now + CLOCK_SKEW:
        raise TimeInTheFuture(field, at)
    return at
