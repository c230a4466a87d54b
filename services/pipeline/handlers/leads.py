"""Handlers of leads and assignment rules: the load, decide, append path of
``handlers/__init__.py``, plus converting a lead through contacts and erasing a prospect."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.pipeline import AssignmentRule, LeadAssigned, LeadErased
from libs.events.write_path import new_events
from services.pipeline.commands import (
    AssignLead,
    CaptureLead,
    DefineAssignmentRules,
    DisqualifyLead,
    OpenDeal,
    QualifyLead,
)
from services.pipeline.domain import deals, leads
from services.pipeline.handlers import (
    Pipeline,
    Written,
    decoded,
    read_events,
)
from services.pipeline.handlers.deals import load_stages
from services.pipeline.read_model import funnel, lead_list

ASSIGNMENT_RULES_STREAM = "assignment-rules"


async def load_rules(
    pipeline: Pipeline, conn: AsyncConnection, tenant_id: str
) -> tuple[tuple[AssignmentRule, ...], int]:
    recorded = await pipeline.store.read_stream(tenant_id, ASSIGNMENT_RULES_STREAM, conn=conn)
    return leads.fold_rules(decoded(recorded)), len(recorded)


async def assignment_rules(
    pipeline: Pipeline, tenant_id: str
) -> tuple[tuple[AssignmentRule, ...], int]:
    async with pipeline.engine.connect() as conn:
        return await load_rules(pipeline, conn, tenant_id)


async def define_assignment_rules(
    pipeline: Pipeline, tenant_id: str, command: DefineAssignmentRules, *, expected: int | None
) -> Written:
    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            current, version = await load_rules(pipeline, conn, tenant_id)
            pipeline.check_version(ASSIGNMENT_RULES_STREAM, expected, version)
            events = leads.decide_rules(command, current)
            if events:
                version = await pipeline.store.append(
                    tenant_id,
                    ASSIGNMENT_RULES_STREAM,
                    version,
                    new_events(events, ASSIGNMENT_RULES_STREAM, now),
                    conn=conn,
                )
                await lead_list.forget_turns(conn, tenant_id)
        pipeline.appended(len(events))
        return Written(ASSIGNMENT_RULES_STREAM, version, created=bool(events))

    return await pipeline.retrying(ASSIGNMENT_RULES_STREAM, expected, attempt)


async def _one_assignment_at_a_time(conn: AsyncConnection, tenant_id: str) -> None:
    # Caps and turns are read, then written: two captures of a tenant at once would
    # both see the same owner with room. SQLite already has a single writer.
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:key))"),
            {"key": f"pipeline-assignment:{tenant_id}"},
        )


async def capture_lead(pipeline: Pipeline, tenant_id: str, command: CaptureLead) -> Written:
    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            await _one_assignment_at_a_time(conn, tenant_id)
            rules, _ = await load_rules(pipeline, conn, tenant_id)
            state = leads.fold(await read_events(pipeline, conn, tenant_id, command.lead_id))
            events = leads.capture(
                state,
                command,
                rules,
                await lead_list.open_leads_per_owner(conn, tenant_id),
                await lead_list.last_assigned(conn, tenant_id),
            )
            version = await pipeline.store.append(
                tenant_id, command.lead_id, 0, new_events(events, command.lead_id, now), conn=conn
            )
            lead = leads.fold(events)
            assert lead is not None
            await lead_list.save_lead(conn, tenant_id, lead, captured_at=now)
            assigned = events[-1]
            assert isinstance(assigned, LeadAssigned)
            index = leads.rule_index(assigned)
            if index is not None and assigned.owner_id is not None:
                await lead_list.record_turn(conn, tenant_id, index, assigned.owner_id)
        pipeline.appended(len(events))
        return Written(command.lead_id, version, created=True)

    return await pipeline.retrying(command.lead_id, None, attempt)


async def change_lead(
    pipeline: Pipeline,
    tenant_id: str,
    command: AssignLead | QualifyLead | DisqualifyLead,
    *,
    expected: int | None,
) -> Written:
    lead_id = command.lead_id

    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            history = await read_events(pipeline, conn, tenant_id, lead_id)
            state = leads.fold(history)
            if state is not None:
                pipeline.check_version(lead_id, expected, state.version)
            events = leads.decide(state, command)
            assert state is not None
            if not events:
                return Written(lead_id, state.version)
            version = await pipeline.store.append(
                tenant_id, lead_id, state.version, new_events(events, lead_id, now), conn=conn
            )
            after = leads.fold([*history, *events])
            assert after is not None
            await lead_list.save_lead(conn, tenant_id, after)
        pipeline.appended(len(events))
        return Written(lead_id, version, created=True)

    return await pipeline.retrying(lead_id, expected, attempt)


async def lead(pipeline: Pipeline, tenant_id: str, lead_id: str) -> leads.Lead:
    async with pipeline.engine.connect() as conn:
        state = leads.fold(await read_events(pipeline, conn, tenant_id, lead_id))
    return leads.existing(state, lead_id)


async def convert_lead(
    pipeline: Pipeline,
    tenant_id: str,
    lead_id: str,
    *,
    deal: dict[str, Any] | None,
    bearer: str | None,
    expected: int | None,
) -> tuple[Written, str, str | None]:
    """The qualified lead becomes a customer of contacts, or is linked to the one that
    holds its email or phone; with ``deal``, a deal opens for that customer at once.
    Returns the lead written, the customer's id and the deal's id."""
    current = await lead(pipeline, tenant_id, lead_id)
    pipeline.check_version(lead_id, expected, current.version)
    leads.can_convert(current)  # before anything is registered in contacts
    profile = {
        "kind": "person",
        "name": current.name,
        "email": current.email,
        "phone": current.phone,
        "owner_id": current.owner_id,
    }
    customer_id, existed = await pipeline.directory.register(
        tenant_id, {k: v for k, v in profile.items() if v is not None}, bearer
    )
    deal_id = deal["deal_id"] if deal else None

    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            history = await read_events(pipeline, conn, tenant_id, lead_id)
            state = leads.existing(leads.fold(history), lead_id)
            pipeline.check_version(lead_id, expected, state.version)
            events = leads.convert(state, customer_id, linked_existing=existed, deal_id=deal_id)
            if deal is not None:
                stages, _ = await load_stages(pipeline, conn, tenant_id)
                opening = OpenDeal.model_validate(
                    {
                        **deal,
                        "customer_id": customer_id,
                        "lead_id": lead_id,
                        "owner_id": deal.get("owner_id") or state.owner_id,
                    }
                )
                opened = deals.decide(None, opening, stages, now)
                await pipeline.store.append(
                    tenant_id,
                    opening.deal_id,
                    0,
                    new_events(opened, customer_id, now),
                    conn=conn,
                )
                new_deal = deals.fold(opened)
                assert new_deal is not None
                await funnel.record_opened(conn, tenant_id, new_deal, now)
            # From now on the lead's story is the customer's: keyed by the customer.
            version = await pipeline.store.append(
                tenant_id,
                lead_id,
                state.version,
                new_events(events, customer_id, now),
                conn=conn,
            )
            after = leads.fold([*history, *events])
            assert after is not None
            await lead_list.save_lead(conn, tenant_id, after)
        pipeline.appended(len(events) + (1 if deal else 0))
        return Written(lead_id, version, created=True)

    written = await pipeline.retrying(lead_id, expected, attempt)
    return written, customer_id, deal_id


async def erase_lead(pipeline: Pipeline, tenant_id: str, lead_id: str, *, by: str) -> Written:
    """Forget a prospect: its contact fields become unreadable in the history (its key is
    destroyed) and are scrubbed from the lead list; LeadErased tells subscribers."""

    async def attempt() -> Written:
        now = pipeline.clock()
        async with pipeline.engine.begin() as conn:
            history = await read_events(pipeline, conn, tenant_id, lead_id)
            state = leads.existing(leads.fold(history), lead_id)
            erased = [LeadErased(lead_id=lead_id, erased_at=now, by=by)]
            key = state.customer_id or lead_id
            version = await pipeline.store.append(
                tenant_id, lead_id, state.version, new_events(erased, key, now), conn=conn
            )
            await forget_lead(pipeline, conn, tenant_id, lead_id)
        pipeline.appended(1)
        return Written(lead_id, version, created=True)

    return await pipeline.retrying(lead_id, None, attempt)


async def forget_lead(
    pipeline: Pipeline, conn: AsyncConnection, tenant_id: str, lead_id: str
) -> None:
    await pipeline.store.erase_personal_data(tenant_id, lead_id, conn=conn)
    await lead_list.scrub(conn, tenant_id, lead_id)


async def forget_leads_of_customer(
    pipeline: Pipeline, conn: AsyncConnection, tenant_id: str, customer_id: str
) -> None:
    """A customer erased in contacts: the leads it was converted from are the same
    person, so their contact fields go too."""
    for lead_id in await lead_list.leads_of_customer(conn, tenant_id, customer_id):
        await forget_lead(pipeline, conn, tenant_id, lead_id)
