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

import asyncio
import dataclasses
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.events import metrics
from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerRegistered,
    InteractionLogged,
    ProfileChanged,
    catalog,
)
from libs.events.store import ConcurrencyConflict, EventStore, NewEvent, RecordedEvent
from libs.events.vault import PersonalDataPolicy
from libs.platform.app import current_correlation_id
from libs.platform.db import drop_overwritten_pages, is_postgres
from libs.platform.errors import Conflict, PreconditionFailed
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
from services.contacts.read_model import customer_list, registration_routine

log = logging.getLogger(__name__)

SERVICE = "contacts"
SOURCE = "/crm/contacts"
# The tenant's custom field definitions are one stream of their own.
CUSTOM_FIELDS_STREAM = "custom-fields"
# Deciding again on fresher state resolves ordinary races; past this, say 409.
ATTEMPTS = 10

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


class StaleVersion(PreconditionFailed):
    """If-Match named a version the customer is no longer (or never was) at."""

    def __init__(self, customer_id: str, expected: int, current: int | None = None) -> None:
        if current is None:  # lost a race at append time: only "moved on" is known
            super().__init__(
                f"customer {customer_id} changed since version {expected}",
                customer_id=customer_id,
            )
        else:
            super().__init__(
                f"customer {customer_id} is at version {current}, not {expected}",
                customer_id=customer_id,
                current_version=current,
            )


class BusyCustomer(Conflict):
    """Other writers kept changing the customer while this command was decided."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(
            f"customer {customer_id} changed concurrently; try again", customer_id=customer_id
        )


@dataclass
class Contacts:
    """What the handlers need, wired once by ``app.create_app`` (tests wire their own)."""

    store: EventStore
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    phone_region: str = "CN"
    import_batch_size: int = 2000
    # Called after every commit that appended events (the relay's wake-up).
    on_append: Callable[[], None] = field(default=lambda: None)
    # Each tenant's custom field definitions and the version they were read at. Only
    # the one-round-trip registration trusts it, and its routine checks the version.
    known_custom_fields: dict[str, tuple[dict[str, CustomFieldDefinition], int]] = field(
        default_factory=dict
    )

    @property
    def engine(self) -> AsyncEngine:
        return self.store.engine

    @property
    def registers_in_one_round_trip(self) -> bool:
        return is_postgres(self.engine)

    def appended(self, count: int) -> None:
        if count:
            metrics.EVENTS_APPENDED.labels(SERVICE).inc(count)
            self.on_append()


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of a command: the customer, its version, and whether anything changed."""

    customer_id: str
    version: int
    changed: bool


# --- shared steps --------------------------------------------------------------------


def new_events(
    events: Sequence[DomainEvent],
    partition_key: str,
    now: datetime,
    *,
    caused_by: str | None = None,
) -> list[NewEvent]:
    """Events to append; ``caused_by`` names the event that made these happen (the
    survivor's merge for the absorbed record's, the erasure asked for for its records')."""
    correlation_id = current_correlation_id()
    return [
        NewEvent.from_domain(
            e,
            partition_key=partition_key,
            occurred_at=now,
            correlation_id=correlation_id,
            causation_id=caused_by,
        )
        for e in events
    ]


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


def check_version(customer_id: str, expected: int | None, current: int) -> None:
    if expected is not None and expected != current:
        raise StaleVersion(customer_id, expected, current)


T = TypeVar("T")


async def _retrying(
    customer_id: str,
    expected: int | None,
    attempt: Callable[[], Awaitable[T]],
    *,
    attempts: int | None = ATTEMPTS,
) -> T:
    """Run ``attempt`` (one transaction) again when another writer got in first;
    ``attempts=None``: as often as it takes."""
    attempt_number = 0
    while attempts is None or attempt_number < attempts:
        if attempt_number:
            # Jittered, so writers that collided once do not collide again in step.
            await asyncio.sleep(random.uniform(0, 0.005 * min(attempt_number, ATTEMPTS)))
        attempt_number += 1
        try:
            return await attempt()
        except ConcurrencyConflict:
            if expected is not None:
                # The caller decided on ``expected``; someone else moved past it.
                raise StaleVersion(customer_id, expected) from None
        except DBAPIError as exc:
            # PostgreSQL may pick this transaction as a deadlock victim or refuse it
            # for serialisation; both are races, not faults: decide again.
            if getattr(exc.orig, "sqlstate", None) not in ("40P01", "40001"):
                raise
            log.info("retrying %s after %s", customer_id, type(exc.orig).__name__)
    raise BusyCustomer(customer_id)


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
        await customer_list.lock_identities(conn, tenant_id, claimed)
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
            await customer_list.lock_customers(conn, tenant_id, [customer_id])
            state = existing(
                await load_customer(contacts, conn, tenant_id, customer_id), customer_id
            )
            check_version(customer_id, expected, state.version)
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
                await customer_list.lock_identities(conn, tenant_id, sorted(new_claims))
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
    attempts = None if isinstance(command, LogInteraction) else ATTEMPTS
    return await _retrying(customer_id, expected, attempt, attempts=attempts)


async def merge_customers(
    contacts: Contacts, tenant_id: str, command: MergeCustomer, *, expected: int | None = None
) -> Written:
    """The survivor absorbs the duplicate; both streams change in one transaction."""
    survivor_id, duplicate_id = command.customer_id, command.duplicate_id

    async def attempt() -> Written:
        now = contacts.clock()
        async with contacts.engine.begin() as conn:
            await customer_list.lock_customers(conn, tenant_id, [survivor_id, duplicate_id])
            survivor = existing(
                await load_customer(contacts, conn, tenant_id, survivor_id), survivor_id
            )
            check_version(survivor_id, expected, survivor.version)
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

    return await _retrying(survivor_id, expected, attempt)


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
            await customer_list.lock_customers(conn, tenant_id, records)
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
                    check_version(target, expected, state.version)
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

    erasure = await _retrying(customer_id, expected, attempt)
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

    return await _retrying(CUSTOM_FIELDS_STREAM, None, attempt)


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
