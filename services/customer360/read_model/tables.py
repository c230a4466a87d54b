"""The 360 view's tables, one set per generation, and how a row maps to a view.

A rebuild fills the next generation's set while this one serves (decision 4 lists
what each table holds and why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.sql.elements import UnaryExpression
from sqlalchemy.sql.selectable import Subquery

from libs.platform.db import JsonDocument, UtcDateTime
from services.customer360.domain.view import (
    Consent,
    CustomerView,
    Interaction,
    Position,
    Profile,
    TimelineEntry,
    empty_sections,
    redacted,
)

NAME = "customer360"

Id = String(64)


@dataclass(frozen=True, slots=True)
class Tables:
    """One generation's tables.

    * ``customers``: one row per (tenant, customer), the whole view but the timeline;
    * ``timeline``: the latest events of each customer's own stream (bounded), each
      with a summary and the same summary without personal data;
    * ``merges``: duplicate -> survivor;
    * ``streams``: the last version applied per source stream (stale redeliveries).
    """

    generation: int
    customers: Table
    timeline: Table
    merges: Table
    streams: Table

    @classmethod
    def of(
        cls,
        generation: int,
        metadata: MetaData | None = None,
        name: Callable[[str], str] | None = None,
    ) -> Tables:
        """Generation ``generation``'s tables, declared on ``metadata`` (a projection's
        own, so that it creates them) and named by ``name`` (its ``table_name``)."""
        metadata = metadata if metadata is not None else MetaData()
        name = name or (lambda base: f"{NAME}_{base}_g{generation}")
        customers = Table(
            name("customers"),
            metadata,
            Column("tenant_id", Id, primary_key=True),
            Column("customer_id", Id, primary_key=True),
            Column("kind", String(16)),
            Column("name", Text, nullable=False),
            Column("email", Text),
            Column("phone", Text),
            Column("birthday", Date),
            Column("company_id", Id),
            Column("attributes", JsonDocument, nullable=False),
            Column("registered_at", UtcDateTime),
            Column("tags", JsonDocument, nullable=False),
            Column("owner_id", Id),
            Column("key_contacts", JsonDocument, nullable=False),
            Column("consents", JsonDocument, nullable=False),
            Column("interaction_count", Integer, nullable=False),
            Column("last_interaction_at", UtcDateTime),
            Column("recent_interactions", JsonDocument, nullable=False),
            Column("merged_into", Id),
            Column("absorbed", JsonDocument, nullable=False),
            Column("erased_at", UtcDateTime),
            Column("sections", JsonDocument, nullable=False),
            Column("version", BigInteger, nullable=False),
            Column("updated_at", UtcDateTime),
            Column("position_topic", String(200)),
            Column("position_partition", Integer),
            Column("position_offset", BigInteger),
        )
        timeline = Table(
            name("timeline"),
            metadata,
            Column("tenant_id", Id, primary_key=True),
            Column("customer_id", Id, primary_key=True),
            Column("event_id", String(64), primary_key=True),
            Column("type", String(200), nullable=False),
            Column("occurred_at", UtcDateTime, nullable=False),
            Column("sequence", BigInteger, nullable=False),
            Column("topic", String(200), nullable=False),
            Column("summary", Text, nullable=False),
            Column("redacted_summary", Text, nullable=False),
            # The line as data, for the reader's language (None: written before 0109);
            # an erasure redacts it in place (``redacted``), as rare as it is.
            Column("facts", JsonDocument),
        )
        merges = Table(
            name("merges"),
            metadata,
            Column("tenant_id", Id, primary_key=True),
            Column("duplicate_id", Id, primary_key=True),
            Column("survivor_id", Id, nullable=False),
        )
        streams = Table(
            name("streams"),
            metadata,
            Column("tenant_id", Id, primary_key=True),
            Column("topic", String(200), primary_key=True),
            Column("stream_id", String(64), primary_key=True),
            Column("version", BigInteger, nullable=False),
        )
        # Index names are global in a PostgreSQL schema: each generation names its own.
        for table, columns in (
            (timeline, ("tenant_id", "customer_id", "occurred_at")),
            (merges, ("tenant_id", "survivor_id")),
        ):
            Index(f"ix_{table.name}_{columns[-1]}", *(table.c[c] for c in columns))
        return cls(generation, customers, timeline, merges, streams)


def newest_first(lines: Table | Subquery) -> tuple[UnaryExpression[Any], ...]:
    """The timeline's order: newest first, by time, then version, then event id."""
    return (lines.c.occurred_at.desc(), lines.c.sequence.desc(), lines.c.event_id.desc())


def timeline_columns(t: Table) -> tuple[Column[Any], ...]:
    return (t.c.event_id, t.c.type, t.c.occurred_at, t.c.customer_id, t.c.summary, t.c.facts)


def timeline_row(
    tenant_id: str, customer_id: str, entry: TimelineEntry, topic: str, *, erased: bool
) -> dict[str, Any]:
    """``entry`` as a timeline row; an erased customer's shows its redacted form."""
    return {
        "tenant_id": tenant_id,
        "customer_id": customer_id,
        "event_id": entry.event_id,
        "type": entry.type,
        "occurred_at": entry.time,
        "sequence": entry.sequence,
        "topic": topic,
        "summary": entry.redacted_summary if erased else entry.summary,
        "redacted_summary": entry.redacted_summary,
        "facts": redacted(entry.facts) if erased else dict(entry.facts),
    }


# --- rows <-> views ---------------------------------------------------------------------


def row_of(view: CustomerView) -> dict[str, Any]:
    profile = view.profile
    return {
        "tenant_id": view.tenant_id,
        "customer_id": view.customer_id,
        "kind": profile.kind,
        "name": profile.name,
        "email": profile.email,
        "phone": profile.phone,
        "birthday": profile.birthday,
        "company_id": profile.company_id,
        "attributes": dict(profile.attributes),
        "registered_at": profile.registered_at,
        "tags": list(view.tags),
        "owner_id": view.owner_id,
        "key_contacts": dict(view.key_contacts),
        "consents": {
            channel: {"granted": c.granted, "source": c.source, "at": c.at.isoformat()}
            for channel, c in view.consents.items()
        },
        "interaction_count": view.interaction_count,
        "last_interaction_at": view.last_interaction_at,
        "recent_interactions": [
            {
                "interaction_id": i.interaction_id,
                "channel": i.channel,
                "direction": i.direction,
                "summary": i.summary,
                "by": i.by,
                "occurred_at": i.occurred_at.isoformat(),
            }
            for i in view.recent_interactions
        ],
        "merged_into": view.merged_into,
        "absorbed": list(view.absorbed),
        "erased_at": view.erased_at,
        "sections": dict(view.sections),
        "version": view.version,
        "updated_at": view.updated_at,
        "position_topic": view.position.topic if view.position else None,
        "position_partition": view.position.partition if view.position else None,
        "position_offset": view.position.offset if view.position else None,
    }


def view_of(row: Any) -> CustomerView:
    position = None
    if row["position_topic"] is not None:
        position = Position(
            row["position_topic"], int(row["position_partition"]), int(row["position_offset"])
        )
    birthday = row["birthday"]
    return CustomerView(
        tenant_id=row["tenant_id"],
        customer_id=row["customer_id"],
        profile=Profile(
            kind=row["kind"],
            name=row["name"],
            email=row["email"],
            phone=row["phone"],
            birthday=date.fromisoformat(birthday) if isinstance(birthday, str) else birthday,
            company_id=row["company_id"],
            attributes=dict(row["attributes"] or {}),
            registered_at=row["registered_at"],
        ),
        tags=tuple(row["tags"] or ()),
        owner_id=row["owner_id"],
        key_contacts=dict(row["key_contacts"] or {}),
        consents={
            channel: Consent(
                granted=bool(c["granted"]),
                source=str(c["source"]),
                at=datetime.fromisoformat(c["at"]),
            )
            for channel, c in (row["consents"] or {}).items()
        },
        interaction_count=int(row["interaction_count"]),
        last_interaction_at=row["last_interaction_at"],
        recent_interactions=interactions_of(row["recent_interactions"]),
        merged_into=row["merged_into"],
        absorbed=tuple(row["absorbed"] or ()),
        erased_at=row["erased_at"],
        sections={**empty_sections(), **(row["sections"] or {})},
        version=int(row["version"]),
        updated_at=row["updated_at"],
        position=position,
    )


def interactions_of(items: Any) -> tuple[Interaction, ...]:
    return tuple(
        Interaction(
            interaction_id=str(i["interaction_id"]),
            channel=str(i["channel"]),
            direction=str(i["direction"]),
            summary=str(i["summary"]),
            by=str(i["by"]),
            occurred_at=datetime.fromisoformat(i["occurred_at"]),
        )
        for i in items or ()
    )
