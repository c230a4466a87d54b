"""The contacts handlers: load, decide, append, in one transaction each.

Every command follows the same path: read the customer's stream (in the
transaction), fold it, ask the pure domain for new events with ``now`` from the
injected clock, then append them with the version read, update this service's
read model and enqueue the outbox, all or nothing. The relay is woken after the
commit, so the events reach Kafka without waiting for its next poll.

Concurrency: a command without If-Match means "apply to the current customer",
so when another writer got in first it is simply decided again on the fresher
state (a few times, then 409; an interaction, which commutes with every other
change, as often as it takes). With If-Match the caller decided on a version it
saw: a different version is a 412, never a silent overwrite.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import InteractionLogged, catalog
from libs.events.store import RecordedEvent
from libs.events.write_path import HandlerContext, Subject, new_events
from libs.platform.db import drop_overwritten_pages, is_postgres
from services.contacts.commands import (
    ChangeProfile,
    CustomerCommand,
    DefineCustomField,
    ErasePersonalData,
    LogInteraction,
    MergeCustomer,
    RegisterCustomer,
)
from services.contacts.domain import (
    NO_CUSTOM_FIELDS,
    Customer,
    CustomerNotFound,
    CustomFieldDefinition,
    DuplicateCustomer,
    decide,
    decide_custom_field,
    decide_merge,
    evolve,
    existing,
    fold,
    fold_custom_fields,
    references,
)
from services.contacts.read_model import customer_list, registration_routine, write_locks

log = logging.getLogger(__name__)

SERVICE = "contacts"
SOURCE = "/crm/contacts"
# The tenant's custom field definitions are one stream of their own.
CUSTOM_FIELDS_STREAM = "custom-fields"


@dataclass
class Contacts(HandlerContext):
    """What the handlers need, wired once by ``app.create_app`` (tests wire their own)."""

    service: ClassVar[str] = SERVICE

    phone_region: str = "CN"
    import_batch_size: int = 2000
    # Each tenant's custom field definitions and the version they were read at. Only
    # the one-round-trip registration trusts it, and its routine checks the version.
    known_custom_fields: dict[str, tuple[dict[str, CustomFieldDefinition], int]] = field(
        default_factory=dict
    )

    @property
    def registers_in_one_round_trip(self) -> bool:
        return is_postgres(self.engine)

    def subject(self, stream_id: str) -> Subject:
        return Subject(f"customer {stream_id}", {"customer_id": stream_id})


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of a command: the customer, its version, and whether anything changed."""

    customer_id: str
    version: int
    changed: bool


# --- shared steps --------------------------------------------------------------------


def decoded(recorded: Sequence[RecordedEvent]) -> list[DomainEvent]:
    return [catalog.decode(e.type, e.data) for e in recorded]


async def load_customer(
    contacts: Contacts, conn: AsyncConnection, tenant_id: str, customer_id: str
) -> Customer | None:
    """The customer folded from its stream in ``tenant_id`` (None: no such customer there)."""
    return fold(decoded(await contacts.store.read_stream(tenant_id, customer_id, conn=conn)))


async def load_custom_fields(
    contacts: Contacts, conn: AsyncConnection, tenant_id: str
) -> tuple[dict[str, CustomFieldDefinition], int]:
    recorded = await contacts.store.read_stream(tenant_id, CUSTOM_FIELDS_STREAM, conn=conn)
    definitions = fold_custom_fields(decoded(recorded))
    contacts.known_custom_fields[tenant_id] = (definitions, len(recorded))
    return definitions, len(recorded)


def evolved(state: Customer | None, events: Sequence[DomainEvent]) -> Customer:
    for event in events:
        state = evolve(state, event)
    assert state is not None, "evolved needs at least a registration"
    return state


# --- customers -----------------------------------------------------------------------


async def register_customer(
    contacts: Contacts, command: RegisterCustomer, *, register_anyway: bool = False
) -> Written:
    """A new customer, unless one with the same email or phone exists (DuplicateCustomer)."""
    tenant_id, customer_id = command.tenant_id, command.customer_id
    now = contacts.clock()
    known = contacts.known_custom_fields.get(tenant_id)
    if contacts.registers_in_one_round_trip and known is not None and not references(command):
        written = await _register_in_one_round_trip(
            contacts, command, now, known, register_anyway=register_anyway
        )
        if written is not None:
            return written
        # The definitions changed since they were read: decide again on fresh ones.
    async with contacts.engine.begin() as conn:
        definitions, _ = await load_custom_fields(contacts, conn, tenant_id)
        others = {
            other: await load_customer(contacts, conn, tenant_id, other)
            for other in references(command)
        }
        events = decide(command, None, now, definitions=definitions, others=others)
        claimed = customer_list.identities_of(command.email, command.phone)
        await write_locks.lock_identities(conn, tenant_id, claimed)
        if not register_anyway:
            holders = await customer_list.identity_holders(conn, tenant_id, claimed)
            for kind in ("email", "phone"):
                holder = next((h for (k, _), h in holders.items() if k == kind), None)
                if holder is not None:
                    raise DuplicateCustomer(holder, kind)
        version = await contacts.store.append(
            tenant_id, customer_id, 0, new_events(events, customer_id, now), conn=conn
        )
        await customer_list.insert_customers(conn, [evolved(None, events)])
    contacts.appended(len(events))
    return Written(customer_id, version, True)


async def _register_in_one_round_trip(
    contacts: Contacts,
    command: RegisterCustomer,
    now: datetime,
    known: tuple[dict[str, CustomFieldDefinition], int],
    *,
    register_anyway: bool,
) -> Written | None:
    """The same registration as below, stored by one routine call
    (services/contacts/read_model/registration_routine.py); None when the cached custom
    field definitions were stale."""
    tenant_id, customer_id = command.tenant_id, command.customer_id
    definitions, definitions_version = known
    events = decide(command, None, now, definitions=definitions, others={})
    start_stream = contacts.store.start_stream_arguments(
        tenant_id, customer_id, new_events(events, customer_id, now)
    )
    async with contacts.engine.connect() as conn:
        refused = await registration_routine.register(
            conn,
            evolved(None, events),
            check_duplicates=not register_anyway,
            custom_fields_stream=CUSTOM_FIELDS_STREAM,
            custom_fields_version=definitions_version,
            start_stream=start_stream,
        )
    if refused is None:
        contacts.appended(len(events))
        return Written(customer_id, len(events), True)
    if refused.duplicate_of is not None:
        kind, holder = refused.duplicate_of
        raise DuplicateCustomer(holder, "email" if kind == "email" else "phone")
    contacts.known_custom_fields.pop(tenant_id, None)
    return None


async def change_customer(
    contacts: Contacts, tenant_id: str, command: CustomerCommand, *, expected: int | None = None
) -> Written:
    """Any one-customer command but registration and erasure (profile, tags, owner, ...)."""
    customer_id = command.customer_id

    async def attempt() -> Written:
        now = contacts.clock()
        async with contacts.engine.begin() as conn:
            await write_locks.lock_customers(conn, tenant_id, [customer_id])
            state = existing(
                await load_customer(contacts, conn, tenant_id, customer_id), customer_id
            )
            contacts.check_version(customer_id, expected, state.version)
            definitions: Mapping[str, CustomFieldDefinition] = NO_CUSTOM_FIELDS
            if isinstance(command, ChangeProfile):
                definitions, _ = await load_custom_fields(contacts, conn, tenant_id)
            others = {
                other: await load_customer(contacts, conn, tenant_id, other)
                for other in references(command)
            }
            events = decide(command, state, now, definitions=definitions, others=others)
            if not events:
                return Written(customer_id, state.version, False)
            after = evolved(state, events)
            new_claims = set(customer_list.identities_of(after.email, after.phone)) - set(
                customer_list.identities_of(state.email, state.phone)
            )
            if new_claims:
                await write_locks.lock_identities(conn, tenant_id, sorted(new_claims))
            version = await contacts.store.append(
                tenant_id, customer_id, state.version, new_events(events, customer_id, now),
                conn=conn,
            )
            await customer_list.update_customer(conn, state, after)
        contacts.appended(len(events))
        return Written(customer_id, version, True)

    # Logging an interaction commutes with every other change: each lost race means
    # another writer's change landed, and deciding again on it gives the same
    # interaction (or, once the customer is erased or merged, that error). So it
    # is never refused as busy, however many are logged at once.
    policy = replace(contacts.retry, attempts=None) if isinstance(command, LogInteraction) else None
    return await contacts.retrying(customer_id, expected, attempt, policy=policy)


async def merge_customers(
    contacts: Contacts, tenant_id: str, command: MergeCustomer, *, expected: int | None = None
) -> Written:
    """The survivor absorbs the duplicate; both streams change in one transaction."""
    survivor_id, duplicate_id = command.customer_id, command.duplicate_id

    async def attempt() -> Written:
        now = contacts.clock()
        async with contacts.engine.begin() as conn:
            await write_locks.lock_customers(conn, tenant_id, [survivor_id, duplicate_id])
            survivor = existing(
                await load_customer(contacts, conn, tenant_id, survivor_id), survivor_id
            )
            contacts.check_version(survivor_id, expected, survivor.version)
            duplicate = existing(
                await load_customer(contacts, conn, tenant_id, duplicate_id), duplicate_id
            )
            for_survivor, for_duplicate = decide_merge(survivor, duplicate, now)
            if not for_survivor and not for_duplicate:
                return Written(survivor_id, survivor.version, False)
            changes = [(survivor, for_survivor), (duplicate, for_duplicate)]
            # The survivor's merge causes what happens to the duplicate.
            survivor_new = new_events(for_survivor, survivor.id, now)
            cause = survivor_new[0].event_id if survivor_new else None
            appending = {
                survivor.id: survivor_new,
                duplicate.id: new_events(for_duplicate, duplicate.id, now, caused_by=cause),
            }
            versions: dict[str, int] = {}
            # Always the same order of streams: two crossed merges then conflict
            # cleanly on the first stream instead of deadlocking on the second.
            for state, _ in sorted(changes, key=lambda change: change[0].id):
                versions[state.id] = await contacts.store.append(
                    tenant_id, state.id, state.version, appending[state.id], conn=conn
                )
            for state, events in changes:
                await customer_list.update_customer(conn, state, evolved(state, events))
            await customer_list.record_merge(conn, tenant_id, survivor_id, duplicate_id)
        contacts.appended(len(for_survivor) + len(for_duplicate))
        return Written(survivor_id, versions[survivor_id], True)

    return await contacts.retrying(survivor_id, expected, attempt)


@dataclass(frozen=True, slots=True)
class Erasure:
    customer_id: str
    version: int
    # The customer and every duplicate merged into it: all records of the person.
    erased_ids: list[str]


async def erase_personal_data(
    contacts: Contacts, tenant_id: str, customer_id: str, *, by: str, expected: int | None = None
) -> Erasure:
    """Forget the person: every record of them, the merged duplicates' included.

    Appends PersonalDataErased to each record (so every read model drops it),
    destroys each record's key (so the history reads redacted from now on) and
    scrubs this service's rows, in one transaction.
    """

    async def attempt() -> Erasure:
        now = contacts.clock()
        appended = 0
        async with contacts.engine.begin() as conn:
            target = await customer_list.resolve(conn, tenant_id, customer_id)
            if target is None:
                raise CustomerNotFound(customer_id)
            records = await customer_list.records_of(conn, tenant_id, target)
            await write_locks.lock_customers(conn, tenant_id, records)
            version = 0
            states = {
                record_id: existing(
                    await load_customer(contacts, conn, tenant_id, record_id), record_id
                )
                for record_id in records
            }
            decided = {
                record_id: decide(ErasePersonalData(customer_id=record_id, by=by), state, now)
                for record_id, state in states.items()
            }
            # The erasure asked for (the target's) causes its merged records' erasures.
            cause = str(uuid.uuid4()) if decided.get(target) else None
            for record_id in sorted(records):
                state = states[record_id]
                if record_id == target:
                    contacts.check_version(target, expected, state.version)
                events = decided[record_id]
                current = state.version
                if events:
                    appending = new_events(
                        events, record_id, now, caused_by=None if record_id == target else cause
                    )
                    if record_id == target and cause is not None:
                        appending[0] = dataclasses.replace(appending[0], event_id=cause)
                    current = await contacts.store.append(
                        tenant_id, record_id, state.version, appending, conn=conn
                    )
                    await customer_list.update_customer(conn, state, evolved(state, events))
                    appended += len(events)
                # Also when already erased: a key written since must not survive.
                await contacts.store.erase_personal_data(tenant_id, record_id, conn=conn)
                if record_id == target:
                    version = current
        contacts.appended(appended)
        return Erasure(target, version, records)

    erasure = await contacts.retrying(customer_id, expected, attempt)
    if not await drop_overwritten_pages(contacts.engine):
        log.warning("erased data of %s still in the write-ahead log: a reader held it", customer_id)
    return erasure


# --- custom fields -------------------------------------------------------------------


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


# --- queries -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CustomerProfile:
    customer_id: str
    version: int
    profile: dict[str, Any]


async def customer_profile(contacts: Contacts, tenant_id: str, customer_id: str) -> CustomerProfile:
    """The customer, or the survivor a merged duplicate's id now stands for."""
    async with contacts.engine.connect() as conn:
        target = await customer_list.resolve(conn, tenant_id, customer_id)
        found = await customer_list.profile(conn, tenant_id, target) if target else None
    if target is None or found is None:
        raise CustomerNotFound(customer_id)
    return CustomerProfile(target, int(found["version"]), found)


@dataclass(frozen=True, slots=True)
class History:
    customer_id: str
    version: int
    events: list[RecordedEvent]
    records: list[dict[str, Any]]


async def customer_history(contacts: Contacts, tenant_id: str, customer_id: str) -> History:
    """The union of the histories of the customer and the duplicates it absorbed,
    in the order they were recorded; personal fields of erased ones read redacted."""
    async with contacts.engine.connect() as conn:
        target = await customer_list.resolve(conn, tenant_id, customer_id)
        if target is None:
            raise CustomerNotFound(customer_id)
        events: list[RecordedEvent] = []
        records: list[dict[str, Any]] = []
        for record_id in await customer_list.records_of(conn, tenant_id, target):
            events += await contacts.store.read_stream(tenant_id, record_id, conn=conn)
            found = await customer_list.profile(conn, tenant_id, record_id)
            if found is not None:
                records.append(found)
    events.sort(key=lambda e: e.position)
    version = int(records[0]["version"]) if records else 0
    return History(target, version, events, records)


def event_view(event: RecordedEvent) -> dict[str, Any]:
    """One event as the history and the export show it (the CloudEvents names)."""
    return {
        "id": event.event_id,
        "type": event.type,
        "customer_id": event.stream_id,
        "sequence": event.version,
        "time": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
        "correlation_id": event.correlation_id,
        "data": event.data,
    }


async def export_customer(contacts: Contacts, tenant_id: str, customer_id: str) -> dict[str, Any]:
    """Everything this service holds about the person, machine-readable (data access)."""
    history = await customer_history(contacts, tenant_id, customer_id)
    interactions = [
        {k: v for k, v in e.data.items() if k != "customer_id"} | {"customer_id": e.stream_id}
        for e in history.events
        if e.type == InteractionLogged.type_name
    ]
    return {
        "exported_at": contacts.clock().isoformat(),
        "tenant_id": tenant_id,
        "customer": history.records[0] if history.records else None,
        # Records merged into this customer: same person, kept with their own ids.
        "merged_records": history.records[1:],
        "interactions": interactions,
        "history": [event_view(e) for e in history.events],
    }
