"""What a caller may ask of the contacts service, validated and normalised.

Every command is a pydantic model; invalid input raises ``pydantic.ValidationError``
whose error ``loc`` names the field (the API turns it into 422 ``{field, reason}``).
Normalisation happens here, once, so the domain and the events only ever see
clean values:

* phone numbers become E.164 (``+8613800138000``) with ``phonenumbers``; numbers
  without a country code are read in the region given in the validation context
  (``Model.model_validate(data, context={"phone_region": "GB"})``), "CN" if none;
* emails are checked and normalised with ``email-validator`` (no DNS lookups);
* names are trimmed and inner whitespace collapsed; tags are trimmed, lowercased,
  de-duplicated and sorted; a blank optional text counts as absent.

Commands about one customer carry ``customer_id`` (the stream id). The handler
sets it, and ``tenant_id`` of ``RegisterCustomer``, from the URL, its id
generator and the authenticated principal, never from the request body.

``ChangeProfile`` follows JSON merge patch (RFC 7396): a field that is absent
does not change, a field that is null (or blank) is removed. The domain reads
``model_fields_set`` to tell the two apart, so build it with ``model_validate``
or keyword arguments, not by assigning defaults explicitly.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import Annotated, Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from libs.events.catalog.contacts import (
    ConsentChannel,
    CustomerKind,
    CustomFieldType,
    Direction,
    InteractionChannel,
)
from libs.platform.types import Instant

DEFAULT_PHONE_REGION = "CN"
EARLIEST_BIRTHDAY = date(1900, 1, 1)
MAX_TAG_LENGTH = 64
# A customer is found and read by its tags; past a hundred they are data, which
# belongs in custom attributes.
MAX_TAGS = 100
MAX_CHOICES = 200
MAX_CHOICE_LENGTH = 100
# Characters that reorder the text around them: "U+202E" makes "Ana\u202Egpj.exe"
# display as "Anaexe.jpg". Marks that only set a direction (U+200E, U+200F) stay.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters by category that display as nothing (Hangul fillers, the blank braille cell).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


# --- normalisation, usable on its own (imports, search) ------------------------------


def normalise_phone(raw: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """``raw`` as E.164; a number without +country code is read as one of ``region``.

    Raises ValueError with the reason when it is not a valid phone number.
    """
    try:
        number = phonenumbers.parse(raw, region.upper())
    except phonenumbers.NumberParseException:
        raise ValueError("is not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"is not a valid phone number (read in region {region.upper()})")
    if number.extension:
        # E.164 has no room for an extension; silently dropping it would dial the wrong desk.
        raise ValueError("extensions are not supported; give a direct number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str:
    """``raw`` checked for syntax and normalised (the domain lowercased, IDNA-safe)."""
    try:
        # Deliverability needs DNS: not in a validator, and not for every import row.
        return validate_email(raw.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address: {exc}") from None


def _visible(char: str) -> bool:
    # Letters, digits, punctuation and symbols show; format characters (zero-width
    # space, joiners), controls, separators and lone combining marks do not.
    return unicodedata.category(char)[0] in "LNPS" and char not in _BLANK_LETTERS


def ensure_displayable(text: str) -> None:
    """ValueError unless ``text`` shows at least one character and cannot reorder
    what is displayed around it."""
    if any(char in _BIDI_CONTROLS for char in text):
        raise ValueError(
            "must not contain bidirectional override characters (U+202A-U+202E, U+2066-U+2069)"
        )
    if not any(_visible(char) for char in text):
        raise ValueError("must hold at least one visible character")


def normalise_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise ValueError("must not be blank")
    ensure_displayable(name)
    return name


def normalise_tags(raw: list[str]) -> list[str]:
    """Trimmed, lowercased, unique and sorted, so "VIP " and "vip" are one tag."""
    tags = {" ".join(tag.split()).lower() for tag in raw}
    if "" in tags:
        raise ValueError("a tag must not be blank")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"a customer has at most {MAX_TAGS} tags")
    for tag in tags:
        try:
            ensure_displayable(tag)
        except ValueError as refused:
            raise ValueError(f"a tag {refused}") from None
    too_long = [tag for tag in tags if len(tag) > MAX_TAG_LENGTH]
    if too_long:
        raise ValueError(f"a tag has at most {MAX_TAG_LENGTH} characters")
    return sorted(tags)


def normalise_slug(raw: str) -> str:
    """Custom field names and key-contact roles: stable machine names."""
    slug = raw.strip().lower()
    if not _SLUG.match(slug):
        raise ValueError("must start with a letter and hold only a-z, 0-9 and _ (max 63)")
    return slug


# --- field types ----------------------------------------------------------------------


def _blank_is_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _check_birthday(value: date | None) -> date | None:
    # The future is checked by the domain, which knows "now"; this catches typos.
    if value is not None and value < EARLIEST_BIRTHDAY:
        raise ValueError(f"must not be before {EARLIEST_BIRTHDAY.isoformat()}")
    return value


def _phone_region(info: ValidationInfo) -> str:
    context = info.context if isinstance(info.context, dict) else {}
    region = context.get("phone_region") or DEFAULT_PHONE_REGION
    return str(region)


Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(max_length=200), AfterValidator(normalise_name)]
Tags = Annotated[list[str], AfterValidator(normalise_tags)]
Slug = Annotated[str, AfterValidator(normalise_slug)]
Birthday = Annotated[date | None, AfterValidator(_check_birthday)]
OptionalEmail = Annotated[str | None, BeforeValidator(_blank_is_none)]
OptionalPhone = Annotated[str | None, BeforeValidator(_blank_is_none)]
OptionalIdentifier = Annotated[Identifier | None, BeforeValidator(_blank_is_none)]
# What a caller may send as a custom attribute; the domain checks it against the
# tenant's definitions. Strict types so that true is not silently the number 1.
AttributeInput = StrictStr | StrictBool | StrictInt | StrictFloat | date | None


class Command(BaseModel):
    # Unknown fields are refused: a typo in a field name must not pass as "no change".
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContactDetails(Command):
    """Email and phone normalisation, shared by registration and profile changes."""

    email: OptionalEmail = None
    phone: OptionalPhone = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else normalise_email(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else normalise_phone(value, _phone_region(info))


# --- customers ------------------------------------------------------------------------


class RegisterCustomer(ContactDetails):
    customer_id: Identifier
    tenant_id: Identifier
    kind: CustomerKind
    name: Name
    birthday: Birthday = None
    owner_id: OptionalIdentifier = None
    tags: Tags = []
    attributes: dict[str, AttributeInput] = {}
    company_id: OptionalIdentifier = None
    # Given by a migration to keep the customer's history; otherwise "now".
    registered_at: Instant | None = None

    @field_validator("company_id")
    @classmethod
    def _company_only_for_a_person(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("kind") == "company":
            raise ValueError("only a person belongs to a company")
        return value


class ChangeProfile(ContactDetails):
    """A merge patch of the profile: absent = unchanged, null = removed."""

    customer_id: Identifier
    name: Name | None = None
    birthday: Birthday = None
    company_id: OptionalIdentifier = None
    # Attribute -> new value; null removes the attribute.
    attributes: dict[str, AttributeInput] = {}

    @field_validator("name")
    @classmethod
    def _name_cannot_be_removed(cls, value: str | None) -> str:
        # Only runs when the caller sent a name, so None here means "remove it".
        if value is None:
            raise ValueError("a customer always has a name")
        return value


class TagCustomer(Command):
    customer_id: Identifier
    tags: Annotated[Tags, Field(min_length=1)]


class UntagCustomer(Command):
    customer_id: Identifier
    tags: Annotated[Tags, Field(min_length=1)]


class ChangeOwner(Command):
    customer_id: Identifier
    # None returns the customer to the unassigned pool.
    owner_id: OptionalIdentifier


class SetKeyContact(Command):
    """Make the person ``contact_id`` the company's key contact for ``role``."""

    customer_id: Identifier
    role: Slug
    contact_id: Identifier


class RecordReferral(Command):
    """The customer ``referrer_id`` referred this customer (set once)."""

    customer_id: Identifier
    referrer_id: Identifier


class RemoveKeyContact(Command):
    customer_id: Identifier
    role: Slug


class LogInteraction(Command):
    customer_id: Identifier
    # Chosen by the caller, so a retried request logs the interaction once.
    interaction_id: Identifier
    channel: InteractionChannel
    direction: Direction
    summary: Annotated[str, StringConstraints(strip_whitespace=True, max_length=4000)] = ""
    by: Identifier
    # When it happened, if not just now (a call logged after the meeting).
    occurred_at: Instant | None = None


class MergeCustomer(Command):
    """``customer_id`` (the survivor) absorbs ``duplicate_id``."""

    customer_id: Identifier
    duplicate_id: Identifier


class ChangeConsent(Command):
    customer_id: Identifier
    channel: ConsentChannel
    granted: bool
    source: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
    # When the customer decided, if not just now (consent collected on paper).
    at: Instant | None = None


class ErasePersonalData(Command):
    customer_id: Identifier
    by: Identifier


# --- tenant-level -------------------------------------------------------------------


class DefineCustomField(Command):
    name: Slug
    type: CustomFieldType
    required: bool = False
    # Validated even when left out: a choice field without choices is a mistake.
    choices: list[str] = Field(default_factory=list, validate_default=True)

    @field_validator("choices")
    @classmethod
    def _choices_fit_the_type(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if len(value) > MAX_CHOICES:  # before the work below, which grows with it
            raise ValueError(f"a field has at most {MAX_CHOICES} choices")
        choices = list(dict.fromkeys(" ".join(c.split()) for c in value))  # keep the order
        if "" in choices:
            raise ValueError("a choice must not be blank")
        if any(len(choice) > MAX_CHOICE_LENGTH for choice in choices):
            raise ValueError(f"a choice has at most {MAX_CHOICE_LENGTH} characters")
        for choice in choices:
            try:
                ensure_displayable(choice)
            except ValueError as refused:
                raise ValueError(f"a choice {refused}") from None
        kind = info.data.get("type")
        if kind == "choice" and not choices:
            raise ValueError("a choice field needs at least one choice")
        if kind is not None and kind != "choice" and choices:
            raise ValueError(f"a {kind} field has no choices")
        return choices


CustomerCommand = (
    RegisterCustomer
    | ChangeProfile
    | TagCustomer
    | UntagCustomer
    | ChangeOwner
    | SetKeyContact
    | RemoveKeyContact
    | RecordReferral
    | LogInteraction
    | ChangeConsent
    | ErasePersonalData
)
"""The commands ``domain.decide`` handles (merges and custom fields have their own)."""
