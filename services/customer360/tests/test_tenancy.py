"""Two tenants may hold the same customer id (an import from one old system into
both): each one's 360 view, timeline included, shows only its own lines."""

from __future__ import annotations

from typing import Any

from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    CustomerRegistered,
    InteractionLogged,
)
from libs.events.envelope import EventEnvelope
from services.customer360.tests.conftest import T0, ContactsTopic, CustomerStream, RunningProjector


def registered(stream: CustomerStream, name: str) -> EventEnvelope:
    return stream(CustomerRegistered(
        customer_id=stream.customer_id, tenant_id=stream.tenant_id, kind="person", name=name,
        registered_at=T0,
    ))


def interaction(stream: CustomerStream, summary: str) -> EventEnvelope:
    return stream(InteractionLogged(
        customer_id=stream.customer_id, interaction_id=f"i-{stream.version + 1}",
        channel="phone", direction="inbound", summary=summary, by="u-1", occurred_at=T0,
    ))


async def timeline(projector: RunningProjector, tenant: str, customer_id: str) -> list[str]:
    view = await projector.reader.view(tenant, customer_id)
    assert view is not None
    shown: dict[str, Any] = view.model_dump(mode="json")
    return sorted(line["summary"] for line in shown["timeline"])


async def test_the_timeline_of_a_customer_id_two_tenants_share_shows_each_its_own(
    projector: RunningProjector, contacts: ContactsTopic
) -> None:
    acme, globex = CustomerStream("acme", "c-shared"), CustomerStream("globex", "c-shared")
    await contacts.publish(
        registered(acme, "Ana of Acme"), interaction(acme, "acme call"),
        registered(globex, "Bo of Globex"), interaction(globex, "globex call"),
    )
    await projector.until_version("acme", "c-shared", 2)
    await projector.until_version("globex", "c-shared", 2)

    assert await timeline(projector, "acme", "c-shared") == [
        "Inbound phone by u-1: acme call", "Registered person Ana of Acme"
    ]
    assert await timeline(projector, "globex", "c-shared") == [
        "Inbound phone by u-1: globex call", "Registered person Bo of Globex"
    ]


async def test_a_merged_timeline_of_shared_ids_shows_each_tenant_its_own(
    projector: RunningProjector, contacts: ContactsTopic
) -> None:
    # The same survivor and duplicate ids in both tenants; only acme merged them.
    streams = {
        (tenant, role): CustomerStream(tenant, f"c-{role}")
        for tenant in ("acme", "globex")
        for role in ("survivor", "duplicate")
    }
    for tenant in ("acme", "globex"):
        survivor, duplicate = streams[tenant, "survivor"], streams[tenant, "duplicate"]
        await contacts.publish(
            registered(survivor, f"{tenant} survivor"),
            registered(duplicate, f"{tenant} duplicate"),
            interaction(duplicate, f"{tenant} duplicate call"),
        )
    survivor, duplicate = streams["acme", "survivor"], streams["acme", "duplicate"]
    await contacts.publish(
        survivor(CustomerMerged(customer_id="c-survivor", duplicate_id="c-duplicate")),
        duplicate(CustomerMergedInto(customer_id="c-duplicate", survivor_id="c-survivor")),
    )
    await projector.until_version("acme", "c-duplicate", 3)
    await projector.until_version("acme", "c-survivor", 2)
    await projector.until_version("globex", "c-duplicate", 2)

    acme_lines = await timeline(projector, "acme", "c-survivor")
    globex_lines = await timeline(projector, "globex", "c-survivor")

    assert "Inbound phone by u-1: acme duplicate call" in acme_lines
    assert not any("globex" in line for line in acme_lines), acme_lines
    assert globex_lines == ["Registered person globex survivor"]
