"""Why the contacts rules refuse a command: one error class per reason, each saying
its HTTP status (the app factory turns a ``DomainError`` into its answer)."""

from __future__ import annotations

from datetime import date, datetime
from typing import ClassVar, Literal

from libs.events.catalog.contacts import CustomFieldType
from libs.platform.errors import Conflict, DomainError, NotFound, Unprocessable
from services.contacts.commands import MAX_TAGS


class ContactsError(DomainError):
    """A command the contacts rules refuse; each subclass also says its HTTP status."""


class CustomerNotFound(ContactsError, NotFound):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} does not exist", customer_id=customer_id)
        self.customer_id = customer_id


class CustomerAlreadyExists(ContactsError, Conflict):
    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} already exists", existing_id=customer_id)
        self.customer_id = customer_id


class CustomerAlreadyMerged(ContactsError, Conflict):
    """The customer is a merged duplicate; the caller should use the survivor."""

    def __init__(self, customer_id: str, survivor_id: str) -> None:
        super().__init__(
            f"customer {customer_id} was merged into {survivor_id}",
            customer_id=customer_id, survivor_id=survivor_id,
        )
        self.customer_id = customer_id
        self.survivor_id = survivor_id


class DuplicateCustomer(ContactsError, Conflict):
    """Another customer of the tenant already has this normalised email or phone.

    Finding it needs the read model, so the handler raises it; the caller may
    register anyway once a person has judged that these are two customers.
    """

    def __init__(self, existing_id: str, field: Literal["email", "phone"]) -> None:
        super().__init__(
            f"a customer with this {field} already exists", existing_id=existing_id, field=field
        )
        self.existing_id = existing_id
        self.field = field


class CustomerErased(ContactsError):
    # 410 Gone: the customer existed, and nothing about them will come back.
    status_code: ClassVar[int] = 410

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"the personal data of customer {customer_id} was erased", customer_id=customer_id
        )
        self.customer_id = customer_id


class CustomFieldAlreadyDefined(ContactsError, Conflict):
    """Changing a field's type would make the values customers already have invalid."""

    def __init__(self, name: str, type: CustomFieldType) -> None:
        super().__init__(f"custom field {name!r} is already defined as {type}", defined_type=type)
        self.name = name
        self.type = type


class CannotMergeIntoItself(ContactsError, Unprocessable):
    def __init__(self, customer_id: str) -> None:
        super().__init__("duplicate_id", "is the surviving customer itself")
        self.customer_id = customer_id


class ReferralAlreadyRecorded(ContactsError, Conflict):
    """A referral is recorded once: the bonus it may earn must not change hands."""

    def __init__(self, customer_id: str, referrer_id: str) -> None:
        super().__init__(
            f"customer {customer_id} was already referred by {referrer_id}",
            customer_id=customer_id, referrer_id=referrer_id,
        )
        self.customer_id = customer_id
        self.referrer_id = referrer_id


class InvalidReferrer(ContactsError, Unprocessable):
    """The customer itself, or a customer this one referred (a referral loop)."""

    def __init__(self, reason: str) -> None:
        super().__init__("referrer_id", reason)


class CannotMergeDifferentKinds(ContactsError, Unprocessable):
    def __init__(self, survivor_id: str, duplicate_id: str) -> None:
        super().__init__("duplicate_id", "a person and a company cannot be merged")
        self.survivor_id = survivor_id
        self.duplicate_id = duplicate_id


class NotACompany(ContactsError, Unprocessable):
    """``customer_id`` is a person where a company is needed; ``field`` says where."""

    def __init__(self, customer_id: str, field: str) -> None:
        super().__init__(field, f"customer {customer_id} is not a company")
        self.customer_id = customer_id


class NotAPerson(ContactsError, Unprocessable):
    """``customer_id`` is a company where a person is needed; ``field`` says where."""

    def __init__(self, customer_id: str, field: str) -> None:
        super().__init__(field, f"customer {customer_id} is not a person")
        self.customer_id = customer_id


class InvalidAttribute(ContactsError, Unprocessable):
    """A custom attribute that does not fit the tenant's definition of it.

    ``attribute`` is its name; ``field`` is where it sits in a request
    (``attributes.<name>``), as the 422 body reports it.
    """

    def __init__(self, attribute: str, reason: str) -> None:
        super().__init__(f"attributes.{attribute}", reason)
        self.attribute = attribute


class TooManyTags(ContactsError, Unprocessable):
    def __init__(self) -> None:
        super().__init__("tags", f"a customer has at most {MAX_TAGS} tags")


class TimeInTheFuture(ContactsError, Unprocessable):
    def __init__(self, field: str, at: datetime | date) -> None:
        super().__init__(field, f"{at.isoformat()} is in the future")
        self.at = at
