"""A tenant's custom fields: their definitions (one stream per tenant, folded here),
redefining one, and the attribute values customers hold checked against them."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    AttributeValue,
    CustomFieldDefined,
    CustomFieldType,
)
from services.contacts.commands import DefineCustomField
from services.contacts.domain.errors import CustomFieldAlreadyDefined, InvalidAttribute

MAX_TEXT_ATTRIBUTE = 1000
# A number attribute is read by spreadsheets and JavaScript as a double: fifteen
# digits are the most it keeps exactly. More is a paste gone wrong, not a figure.
MAX_NUMBER_DIGITS = 15


@dataclass(frozen=True, slots=True)
class CustomFieldDefinition:
    name: str
    type: CustomFieldType
    required: bool = False
    choices: tuple[str, ...] = ()


NO_CUSTOM_FIELDS: Mapping[str, CustomFieldDefinition] = MappingProxyType({})


def fold_custom_fields(events: Iterable[DomainEvent]) -> dict[str, CustomFieldDefinition]:
    definitions: dict[str, CustomFieldDefinition] = {}
    for event in events:
        if isinstance(event, CustomFieldDefined):
            definitions[event.name] = CustomFieldDefinition(
                name=event.name, type=event.type, required=event.required,
                choices=tuple(event.choices),
            )
    return definitions


def decide_custom_field(
    command: DefineCustomField,
    definitions: Mapping[str, CustomFieldDefinition],
    now: datetime,
) -> list[DomainEvent]:
    """Define a field, or redefine whether it is required and its choices."""
    wanted = CustomFieldDefinition(
        name=command.name, type=command.type, required=command.required,
        choices=tuple(command.choices),
    )
    current = definitions.get(command.name)
    if current == wanted:
        return []
    if current is not None and current.type != wanted.type:
        raise CustomFieldAlreadyDefined(current.name, current.type)
    return [CustomFieldDefined(name=command.name, type=command.type,
                               required=command.required, choices=command.choices)]


def validate_attributes(
    attributes: Mapping[str, object],
    definitions: Mapping[str, CustomFieldDefinition],
    *,
    require_all: bool = True,
) -> dict[str, AttributeValue]:
    """``attributes`` checked against the tenant's definitions and normalised.

    Text is trimmed, numbers become int or float (numeric strings from imports
    too), dates become "YYYY-MM-DD", a choice takes its defined spelling. None
    or blank means "not given". With ``require_all`` every required field must
    be given. Raises InvalidAttribute naming the first offending field.
    """
    values: dict[str, AttributeValue] = {}
    for name, raw in attributes.items():
        definition = definitions.get(name)
        if definition is None:
            raise InvalidAttribute(name, "is not a custom field of this tenant")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        values[name] = _ATTRIBUTE_PARSERS[definition.type](name, raw, definition)
    if require_all:
        for definition in definitions.values():
            if definition.required and definition.name not in values:
                raise InvalidAttribute(definition.name, "is required")
    return values


def _text(name: str, raw: object, definition: CustomFieldDefinition) -> AttributeValue:
    if not isinstance(raw, str):
        raise InvalidAttribute(name, "must be text")
    text = raw.strip()
    if len(text) > MAX_TEXT_ATTRIBUTE:
        raise InvalidAttribute(name, f"has at most {MAX_TEXT_ATTRIBUTE} characters")
    return text


def _number(name: str, raw: object, definition: CustomFieldDefinition) -> AttributeValue:
    number: int | float
    # bool is an int in Python, but true is not a number a user meant.
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InvalidAttribute(name, "must be a number")
    if isinstance(raw, str):
        if len(raw) > 100:  # parsing a long digit string is quadratic; no figure needs it
            raise InvalidAttribute(name, f"has at most {MAX_NUMBER_DIGITS} digits before the point")
        try:
            number = int(raw.strip())
        except ValueError:
            try:
                number = float(raw.strip())
            except ValueError:
                raise InvalidAttribute(name, "must be a number") from None
    else:
        number = raw
    if isinstance(number, float) and not math.isfinite(number):
        raise InvalidAttribute(name, "must be a finite number")
    if abs(number) >= 10**MAX_NUMBER_DIGITS:
        raise InvalidAttribute(name, f"has at most {MAX_NUMBER_DIGITS} digits before the point")
    return number


def _date(name: str, raw: object, definition: CustomFieldDefinition) -> AttributeValue:
    if isinstance(raw, datetime):
        raise InvalidAttribute(name, "must be a date without a time")
    if isinstance(raw, date):
        return raw.isoformat()
    if isinstance(raw, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw.strip()):
        try:
            return date.fromisoformat(raw.strip()).isoformat()
        except ValueError:
            pass
    raise InvalidAttribute(name, "must be a date (YYYY-MM-DD)")


def _choice(name: str, raw: object, definition: CustomFieldDefinition) -> AttributeValue:
    if isinstance(raw, str):
        wanted = " ".join(raw.split()).casefold()
        for choice in definition.choices:
            if choice.casefold() == wanted:
                return choice
    raise InvalidAttribute(name, f"must be one of {', '.join(definition.choices)}")


_ATTRIBUTE_PARSERS: dict[
    CustomFieldType, Callable[[str, object, CustomFieldDefinition], AttributeValue]
] = {"text": _text, "number": _number, "date": _date, "choice": _choice}
