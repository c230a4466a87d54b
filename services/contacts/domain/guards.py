"""The checks every decision shares: that the customer exists and may be written,
that a time is not in the future, that a customer pointed at is the tenant's own."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta

from services.contacts.domain.customer import Customer
from services.contacts.domain.errors import (
    CustomerAlreadyMerged,
    CustomerErased,
    CustomerNotFound,
    NotACompany,
    TimeInTheFuture,
)

CLOCK_SKEW = timedelta(minutes=5)


def existing(state: Customer | None, customer_id: str) -> Customer:
    """The customer ``customer_id``, or CustomerNotFound when its stream is empty."""
    if state is None:
        raise CustomerNotFound(customer_id)
    if state.id != customer_id:
        # Not a business rule: the handler folded the wrong stream.
        raise ValueError(f"command for {customer_id} decided on the state of {state.id}")
    return state


def ensure_writable(customer: Customer) -> None:
    # Erased first: once erased, being merged is no longer the caller's concern.
    if customer.erased:
        raise CustomerErased(customer.id)
    if customer.merged_into is not None:
        raise CustomerAlreadyMerged(customer.id, customer.merged_into)


def ensure_company(customer: Customer, field: str) -> None:
    if customer.kind != "company":
        raise NotACompany(customer.id, field)


def ensure_not_in_future(field: str, at: datetime, now: datetime) -> datetime:
    if at > now + CLOCK_SKEW:
        raise TimeInTheFuture(field, at)
    return at


def ensure_born(birthday: date | None, now: datetime) -> None:
    # A day of slack: "today" in Shanghai is still "yesterday" in UTC for eight hours.
    if birthday is not None and birthday > now.date() + timedelta(days=1):
        raise TimeInTheFuture("birthday", birthday)


def referenced(
    customer_id: str, tenant_id: str, others: Mapping[str, Customer | None]
) -> Customer:
    """Another customer the command points at, if the command may point at it."""
    other = others.get(customer_id)
    # Another tenant's customer must look exactly like one that does not exist.
    if other is None or other.tenant_id != tenant_id:
        raise CustomerNotFound(customer_id)
    ensure_writable(other)
    return other


def company_of_person(company_id: str, tenant_id: str,
                      others: Mapping[str, Customer | None]) -> None:
    ensure_company(referenced(company_id, tenant_id, others), "company_id")
