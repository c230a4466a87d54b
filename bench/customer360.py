"""CPU per event of the 360 projector, beside benchmark 4's projection, in one run.

    .venv/bin/python -m bench.customer360                 # 3 repetitions, medians
    .venv/bin/python -m bench.customer360 --profile 360.prof   # and a cProfile of one run

Both consume pre-published events from the bundled broker into a fresh PostgreSQL
database with a ``ProjectionRunner`` until caught up. Measured: this process's CPU
time (``time.process_time``) from the first applied batch to caught up, per event,
so the broker's and PostgreSQL's own CPU are left out, as the issue's ratio asks.

* ``bench-totals``: benchmark 4's projection and events (``bench/projector.py``);
* ``customer360``: the 360 projection on a contacts history as the relay publishes
  it: per customer a registration (email, phone, tags, attributes), a profile
  change, a tag, an interaction and a consent decision.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import statistics
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import BenchTotals, broker, catalog, fresh_database, prefill
from bench.projector import PARTITIONS, publish
from libs.events.catalog import DomainEvent, EventCatalog
from libs.events.catalog.contacts import (
    ConsentChanged,
    CustomerRegistered,
    CustomerTagged,
    InteractionLogged,
    ProfileChanged,
)
from libs.events.consumer import Progress, ReceivedEvent
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, ensure_topics, service_topic
from libs.events.projection import Projection, ProjectionRunner, end_offsets
from libs.platform.db import create_engine
from services.customer360.domain.sources import catalog as customer360_catalog
from services.customer360.read_model.writer import Customer360Projection

T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
TENANT = "bench"
EVENTS_PER_CUSTOMER = 5


def contacts_history(customer: int) -> list[EventEnvelope]:
    """One customer's first five events, as the contacts relay publishes them."""
    cid = str(uuid.UUID(int=customer))
    at = T0 + timedelta(seconds=customer)
    events: list[DomainEvent] = [
        CustomerRegistered(
            customer_id=cid, tenant_id=TENANT, kind="person", name=f"Customer {customer}",
            email=f"c{customer}@example.com", phone=f"+86138{customer:08d}",
            owner_id="u-sales", tags=["lead", "fair"],
            attributes={"source": "spring fair", "budget": 1200},
            registered_at=at,
        ),
        ProfileChanged(customer_id=cid, email=f"c{customer}@example.org"),
        CustomerTagged(customer_id=cid, tag="vip"),
        InteractionLogged(
            customer_id=cid, interaction_id=f"i-{customer}", channel="phone",
            direction="inbound", summary="Asked for a quote on the premium plan", by="u-sales",
            occurred_at=at,
        ),
        ConsentChanged(customer_id=cid, channel="email", granted=True, source="web form",
                       at=at),
    ]
    return [
        EventEnvelope(
            id=str(uuid.uuid4()), source="/crm/contacts", type=type(event).type_name,
            subject=cid, time=at + timedelta(milliseconds=version), tenantid=TENANT,
            partitionkey=cid, sequence=version, data=event.model_dump(mode="json"),
            dataschema=f"https://schemas.crm.example/events/{type(event).type_name}.json",
        )
        for version, event in enumerate(events, start=1)
    ]


async def publish_contacts(kafka: KafkaSettings, topic: str, customers: int) -> int:
    """Publishes in rounds (every customer's first event, then every second...), so that
    a batch holds many customers, as under a steady load of registrations."""
    await ensure_topics(kafka, [topic])
    histories = [contacts_history(c) for c in range(customers)]
    rounds = (history[step] for step in range(EVENTS_PER_CUSTOMER) for history in histories)
    return await prefill(kafka, topic, rounds)


class CpuTimedRunner(ProjectionRunner):
    first_batch_cpu: float | None = None
    first_batch_wall: float | None = None
    batches = 0

    async def apply_batch(self, received: Sequence[ReceivedEvent], progress: Progress) -> None:
        if self.first_batch_cpu is None and received:
            self.first_batch_cpu = time.process_time()
            self.first_batch_wall = time.perf_counter()
        await super().apply_batch(received, progress)
        self.batches += 1


async def consume(
    kafka: KafkaSettings, topic: str, count: int, projection: Projection, decoder: EventCatalog,
    label: str, max_records: int, profile: cProfile.Profile | None = None,
) -> dict[str, Any]:
    targets = await end_offsets(kafka, [topic])
    async with fresh_database(label) as url:
        engine = create_engine(url)
        runner = CpuTimedRunner(projection, engine, kafka, decoder, max_records=max_records)
        await runner.create_tables()

        def caught_up() -> bool:
            return all(runner.progress.get(tp, 0) >= end for tp, end in targets.items())

        if profile is not None:
            profile.enable()
        await asyncio.wait_for(runner.run(asyncio.Event(), until=caught_up), timeout=900)
        cpu, wall = time.process_time(), time.perf_counter()
        if profile is not None:
            profile.disable()
        await engine.dispose()
    assert runner.first_batch_cpu is not None and runner.first_batch_wall is not None
    return {
        "events": count,
        "cpu_ms_per_event": round((cpu - runner.first_batch_cpu) * 1000 / count, 4),
        "rate": round(count / (wall - runner.first_batch_wall), 1),
        "batches": runner.batches,
    }


async def run_totals(events: int, max_records: int) -> dict[str, Any]:
    with broker() as running:
        kafka = KafkaSettings(bootstrap_servers=running.bootstrap_servers, partitions=PARTITIONS)
        topic = f"crm.bench.proj.{uuid.uuid4().hex[:8]}"
        await publish(kafka, topic, events)
        return await consume(
            kafka, topic, events, BenchTotals(topics=(topic,)), catalog, "totals", max_records
        )


async def run_customer360(customers: int, max_records: int,
                          profile: cProfile.Profile | None = None) -> dict[str, Any]:
    with broker() as running:
        kafka = KafkaSettings(bootstrap_servers=running.bootstrap_servers, partitions=PARTITIONS)
        topic = service_topic("contacts")
        count = await publish_contacts(kafka, topic, customers)
        return await consume(
            kafka, topic, count, Customer360Projection(1), customer360_catalog, "c360",
            max_records, profile,
        )


async def main(customers: int, reps: int, max_records: int, profile_path: str | None) -> None:
    rows: dict[str, list[dict[str, Any]]] = {"bench-totals": [], "customer360": []}
    for rep in range(reps):
        # Alternate the order, so that neither always runs on a warmer machine.
        order = ["bench-totals", "customer360"] if rep % 2 == 0 else ["customer360",
                                                                     "bench-totals"]
        for name in order:
            if name == "bench-totals":
                result = await run_totals(customers * EVENTS_PER_CUSTOMER, max_records)
            else:
                result = await run_customer360(customers, max_records)
            rows[name].append(result)
            print(f"rep {rep + 1} {name:13s} {result}", flush=True)
    medians = {
        name: statistics.median(r["cpu_ms_per_event"] for r in results)
        for name, results in rows.items()
    }
    ratio = medians["customer360"] / medians["bench-totals"]
    print(f"batches of at most {max_records}: median CPU per event: "
          f"bench-totals {medians['bench-totals']:.4f} ms, "
          f"customer360 {medians['customer360']:.4f} ms, ratio {ratio:.1f}x")
    if profile_path:
        profile = cProfile.Profile(time.process_time)
        await run_customer360(customers, max_records, profile)
        profile.dump_stats(profile_path)
        print(f"profile of one customer360 run: {profile_path}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    # 1000 is the runtime's default (a backlog); a steady load of registrations is
    # consumed in batches of a few events each.
    parser.add_argument("--max-records", type=int, default=1000)
    parser.add_argument("--profile", default=None)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.reps, args.max_records, args.profile))
