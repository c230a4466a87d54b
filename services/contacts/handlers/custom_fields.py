"""A tenant's custom fields: defining one (or its required flag and choices), and the
definitions as the API lists them. The cache registration trusts is dropped on a change."""

from __future__ import annotations

from dataclasses import dataclass

from libs.events.write_path import new_events
from services.contacts.commands import DefineCustomField
from services.contacts.domain import (
    CustomFieldDefinition,
    decide_custom_field,
)
from services.contacts.handlers.customers import CUSTOM_FIELDS_STREAM, Contacts, load_custom_fields


@dataclass(frozen=True, slots=True)
class CustomFieldWritten:
    definition: CustomFieldDefinition
    version: int
    created: bool


async def define_custom_field(
    contacts: Contacts, tenant_id: str, command: DefineCustomField
) -> CustomFieldWritten:
    async def attempt() -> CustomFieldWritten:
        now = contacts.clock()
        async with contacts.engine.begin() as conn:
            definitions, version = await load_custom_fields(contacts, conn, tenant_id)
            events = decide_custom_field(command, definitions, now)
            if events:
                version = await contacts.store.append(
                    tenant_id, CUSTOM_FIELDS_STREAM, version,
                    new_events(events, CUSTOM_FIELDS_STREAM, now), conn=conn,
                )
        contacts.known_custom_fields.pop(tenant_id, None)
        contacts.appended(len(events))
        # Either nothing changed or the field is now exactly what was asked for.
        wanted = CustomFieldDefinition(
            name=command.name, type=command.type, required=command.required,
            choices=tuple(command.choices),
        )
        return CustomFieldWritten(wanted, version, created=command.name not in definitions)

    return await contacts.retrying(CUSTOM_FIELDS_STREAM, None, attempt)


async def custom_fields(contacts: Contacts, tenant_id: str) -> list[CustomFieldDefinition]:
    async with contacts.engine.connect() as conn:
        definitions, _ = await load_custom_fields(contacts, conn, tenant_id)
    return [definitions[name] for name in sorted(definitions)]
