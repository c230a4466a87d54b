"""The published language of the contacts service: ``crm.contacts.*.v1``.

These models are a public contract: other services and enterprise systems
subscribe to them, and each has a JSON Schema under ``schema_base_url``. Add
fields with defaults; anything else is a new version with an upcaster.

Conventions:

* Every event about a customer carries ``customer_id`` (also the Kafka key).
  The tenant travels in the envelope (``tenantid``); only ``CustomerRegistered``
  repeats it, so that a customer's own stream says whose it is.
* An event carries its own time only where the business time can differ from
  the time it was recorded (a migration's ``registered_at``, a back-dated call's
  ``occurred_at``, a consent's ``at``) or where the law asks for it
  (``erased_at``). Otherwise the envelope's ``time`` is the time of the fact.
* ``ProfileChanged`` lists only what changed, as typed optional fields: a field
  that is ``None`` and not named in ``cleared`` did not change; a field named in
  ``cleared`` was removed (set to null). We chose typed fields over a free
  ``changes`` dict so that the published JSON Schema says what each value is.
* ``PERSONAL_DATA`` (at the end) names the fields stored sealed with the customer's
  key, which read as the given value once the customer's personal data is erased.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import ClassVar, Literal, Protocol, TypedDict, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from libs.events.catalog import DomainEvent, EventCatalog
from libs.events.vault import PersonalDataPolicy
from libs.platform.types import Instant

CustomerKind = Literal["person", "company"]
InteractionChannel = Literal["phone", "email", "wechat", "sms", "visit", "meeting"]
Direction = Literal["inbound", "outbound"]
ConsentChannel = Literal["email", "sms", "phone", "wechat"]
CustomFieldType = Literal["text", "number", "date", "choice"]
# Profile fields that ProfileChanged.cleared may name.
ClearableField = Literal["email", "phone", "birthday", "company_id"]

# A custom attribute as stored: text and choice as str, number as int or float,
# date as an ISO 8601 string (YYYY-MM-DD), so every value is plain JSON.
AttributeValue = str | int | float


class ConsentRecord(BaseModel):
    """A customer's current decision about one channel, and how we know it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    granted: bool
    source: str
    at: Instant


class CustomerRegistered(DomainEvent, type_name="crm.contacts.customer_registered.v1"):
    customer_id: str
    tenant_id: str
    kind: CustomerKind
    name: str
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    owner_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    # The company a person works for; always None for a company.
    company_id: str | None = None
    # Historic for migrated customers, so "customer since" survives a migration.
    registered_at: Instant


class ContactFields(Protocol):
    """What a profile change applies to, in any service's view of a customer."""

    @property
    def name(self) -> str: ...
    @property
    def email(self) -> str | None: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def birthday(self) -> date | None: ...
    @property
    def company_id(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, AttributeValue]: ...


class ChangedFields(TypedDict):
    name: str
    email: str | None
    phone: str | None
    birthday: date | None
    company_id: str | None
    attributes: dict[str, AttributeValue]


_T = TypeVar("_T")


class ProfileChanged(DomainEvent, type_name="crm.contacts.profile_changed.v1"):
    """Only the fields that changed; see the module docstring for ``cleared``."""

    customer_id: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    company_id: str | None = None
    cleared: list[ClearableField] = Field(default_factory=list)
    # Custom attributes that were added or changed, and those that were removed.
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    attributes_removed: list[str] = Field(default_factory=list)

    def applied_to(self, before: ContactFields) -> ChangedFields:
        """The fields after this change, the one reading of it for every service that
        folds a profile (contacts' customer, the 360 view): a value given replaces,
        a field cleared is None, a field not named is kept."""
        cleared = set(self.cleared)

        def patched(old: _T | None, new: _T | None, field: ClearableField) -> _T | None:
            if field in cleared:
                return None
            return old if new is None else new

        attributes = {
            k: v for k, v in before.attributes.items() if k not in self.attributes_removed
        }
        return ChangedFields(
            name=self.name or before.name,
            email=patched(before.email, self.email, "email"),
            phone=patched(before.phone, self.phone, "phone"),
            birthday=patched(before.birthday, self.birthday, "birthday"),
            company_id=patched(before.company_id, self.company_id, "company_id"),
            attributes={**attributes, **self.attributes},
        )


class CustomerTagged(DomainEvent, type_name="crm.contacts.customer_tagged.v1"):
    customer_id: str
    tag: str


class CustomerUntagged(DomainEvent, type_name="crm.contacts.customer_untagged.v1"):
    customer_id: str
    tag: str


class OwnerChanged(DomainEvent, type_name="crm.contacts.owner_changed.v1"):
    customer_id: str
    # None means "nobody": the customer was, or now is, in the unassigned pool.
    from_owner_id: str | None
    to_owner_id: str | None


class KeyContactChanged(DomainEvent, type_name="crm.contacts.key_contact_changed.v1"):
    """A company's key contact for a role changed: a churn signal of its own."""

    customer_id: str
    role: str
    previous_contact_id: str | None
    # None when the role was vacated.
    contact_id: str | None


class InteractionLogged(DomainEvent, type_name="crm.contacts.interaction_logged.v1"):
    customer_id: str
    interaction_id: str
    channel: InteractionChannel
    direction: Direction
    summary: str = ""
    by: str
    occurred_at: Instant


class CustomerMerged(DomainEvent, type_name="crm.contacts.customer_merged.v1"):
    """On the survivor: it absorbed ``duplicate_id``.

    The survivor keeps what it had; it takes from the duplicate only what it
    lacked. Each field below is what was absorbed (None or empty: nothing).
    Absorbed key contacts and consents are not new decisions, which is why they
    are not KeyContactChanged or ConsentChanged events (no false churn signal).
    """

    customer_id: str
    duplicate_id: str
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    owner_id: str | None = None
    company_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    attributes: dict[str, AttributeValue] = Field(default_factory=dict)
    key_contacts: dict[str, str] = Field(default_factory=dict)
    consents: dict[ConsentChannel, ConsentRecord] = Field(default_factory=dict)
    # The duplicate's interactions stay in its stream; the survivor counts them.
    interaction_count: int = 0
    last_interaction_at: Instant | None = None


class CustomerMergedInto(DomainEvent, type_name="crm.contacts.customer_merged_into.v1"):
    """On the duplicate: from now on ``survivor_id`` is the customer."""

    customer_id: str
    survivor_id: str


class CustomerReferred(DomainEvent, type_name="crm.contacts.customer_referred.v1"):
    """Who brought the customer: recorded once, never changed (decision 0040).

    ``referrer_id`` is another customer of the same tenant. The envelope's ``time`` is
    when the referral was recorded; loyalty pays its referral bonus only on a first
    order placed at or after it.
    """

    customer_id: str
    referrer_id: str


class ConsentChanged(DomainEvent, type_name="crm.contacts.consent_changed.v1"):
    customer_id: str
    channel: ConsentChannel
    granted: bool
    # How we learnt it (web form, call, unsubscribe link, import...): evidence.
    source: str
    at: Instant


class PersonalDataErased(DomainEvent, type_name="crm.contacts.personal_data_erased.v1"):
    """Subscribers must drop the customer's name, email, phone, birthday and attributes."""

    erases_personal_data: ClassVar[bool] = True

    customer_id: str
    erased_at: Instant
    by: str


class CustomFieldDefined(DomainEvent, type_name="crm.contacts.custom_field_defined.v1"):
    """Tenant-level: a custom attribute customers of the tenant may carry."""

    name: str
    type: CustomFieldType
    required: bool = False
    # Allowed values of a "choice" field; empty for the other types.
    choices: list[str] = Field(default_factory=list)


catalog = EventCatalog(
    [
        CustomerRegistered,
        ProfileChanged,
        CustomerTagged,
        CustomerUntagged,
        OwnerChanged,
        KeyContactChanged,
        InteractionLogged,
        CustomerMerged,
        CustomerMergedInto,
        CustomerReferred,
        ConsentChanged,
        PersonalDataErased,
        CustomFieldDefined,
    ],
    schema_base_url="https://schemas.crm.example/events",
)

# What erasure must make unreadable in the immutable history (crypto-shredding).
# The subject is the event's partition key, the customer id.
PERSONAL_DATA = PersonalDataPolicy(
    {
        CustomerRegistered.type_name: {
            "name": "",
            "email": None,
            "phone": None,
            "birthday": None,
            "attributes": {},
        },
        ProfileChanged.type_name: {
            "name": None,
            "email": None,
            "phone": None,
            "birthday": None,
            "attributes": {},
        },
        CustomerMerged.type_name: {
            "email": None,
            "phone": None,
            "birthday": None,
            "attributes": {},
        },
        # What was said on a call or in a meeting is about the person.
        InteractionLogged.type_name: {"summary": ""},
    }
)
