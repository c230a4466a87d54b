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

Here: what every handler shares (``Contacts``, ``Written``, loading a customer and the
tenant's custom fields), registering a customer, any other one-customer command, and
the profile as the API shows it. Merges, erasure and export, the history and custom
fields have their own modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.contacts import catalog
from libs.events.store import RecordedEvent
from libs.events.tracing import appending
from libs.events.write_path import HandlerContext, Subject, new_events
from libs.platform.db import is_postgres
from services.contacts.commands import (
    ChangeProfile,
    CustomerCommand,
    LogInteraction,
    RegisterCustomer,
)
from services.contacts.domain import (
    NO_CUSTOM_FIELDS,
    Customer,
    CustomerNotFound,
    CustomFieldDefinition,
    DuplicateCustomer,
    decide,
    evolve,
    existing,
    fold,
    fold_custom_fields,
    references,
)
from services.contacts.read_model import customer_list, registration_routine, write_locks

SERVICE = "contacts"
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
    with appending(len(events)):
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
