"""Benchmark 5: end-to-end lag at a steady rate, append committed -> read model updated.

Three processes, as they would be deployed (and so they do not share one core's
event loop on a 2-core machine):

* this process, the "service": appends one event per transaction at a fixed rate
  (each append its own task, so a slow commit does not delay the schedule) and
  notes the time each append returned, i.e. committed;
* a relay process: ``OutboxRelay.run`` with its defaults (it cannot be woken by an
  append in another process, so it finds new rows by its 20 ms idle poll);
* consumers use the library's ``KafkaSettings.fetch_max_wait_ms`` (20 ms since
  commit ebdfb5b; aiokafka's default of 500 ms was most of the lag before);
* a projector process: ``ProjectionRunner`` with ``LagProbe`` (BenchTotals plus a row
  per event); a subclass notes the time right after each batch's transaction
  committed, i.e. when the read model shows the event.

The relay process notes when each event's publish was acknowledged, which splits
the lag into store -> broker and broker -> read model. All times are
``time.time()`` on one host. Events of the first ``warmup`` seconds are not counted
(they pay for the relay's producer start).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import tempfile
import time
import uuid
from collections.abc import Sequence
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import func, select

from bench.common import (
    TENANT,
    LagProbe,
    broker,
    catalog,
    fresh_database,
    new_event,
    percentile,
)
from libs.events.consumer import Checkpoint, Progress, ReceivedEvent
from libs.events.envelope import KafkaRecord
from libs.events.kafka import KafkaSettings, ensure_topics
from libs.events.outbox import OutboxRelay
from libs.events.projection import ProjectionRunner
from libs.events.published import PartitionEnd
from libs.events.store import EventStore
from libs.platform.db import create_engine

PARTITIONS = 6


# --------------------------------------------------------------------------- child processes


class _TimedRelay(OutboxRelay):
    published: dict[str, float]

    async def _publish(
        self, batch: list[KafkaRecord], *, republishing: bool = False
    ) -> dict[int, PartitionEnd]:
        ends = await super()._publish(batch, republishing=republishing)
        now = time.time()
        for record in batch:
            event_id = next(v for k, v in record.headers if k == "ce_id").decode()
            self.published.setdefault(event_id, now)
        return ends


class _TimedRunner(ProjectionRunner):
    visible: dict[str, float]
    ready: MpEvent

    async def apply_batch(self, received: Sequence[ReceivedEvent], progress: Progress) -> None:
        await super().apply_batch(received, progress)
        now = time.time()
        for e in received:
            self.visible.setdefault(e.envelope.id, now)

    async def _resume(self, assigned: set[TopicPartition]) -> dict[TopicPartition, Checkpoint]:
        saved = await super()._resume(assigned)
        self.ready.set()
        return saved


async def _until(stop: MpEvent) -> asyncio.Event:
    event = asyncio.Event()

    async def watch() -> None:
        await asyncio.to_thread(stop.wait)
        event.set()

    asyncio.get_running_loop().create_task(watch())
    return event


def relay_main(url: str, bootstrap: str, topic: str, stop: MpEvent, ready: MpEvent,
               out: str) -> None:
    async def main() -> None:
        engine = create_engine(url)
        relay = _TimedRelay(EventStore(engine), KafkaSettings(bootstrap_servers=bootstrap,
                                                              partitions=PARTITIONS),
                            service="bench", topic=topic, source="/crm/bench")
        relay.published = {}
        await relay._ensure_producer()  # the relay would start it lazily, on the first event
        stopping = await _until(stop)
        ready.set()
        await relay.run(stopping)
        await engine.dispose()
        _write_json(out, relay.published)

    asyncio.run(main())


def _write_json(path: str, value: object) -> None:
    Path(path).write_text(json.dumps(value))


def _read_json(path: str) -> Any:
    return json.loads(Path(path).read_text())


def projector_main(url: str, bootstrap: str, topic: str, stop: MpEvent, ready: MpEvent,
                   out: str) -> None:
    async def main() -> None:
        engine = create_engine(url)
        kafka = KafkaSettings(bootstrap_servers=bootstrap, partitions=PARTITIONS)
        runner = _TimedRunner(LagProbe(topics=(topic,)), engine, kafka, catalog)
        runner.visible, runner.ready = {}, ready
        stopping = await _until(stop)
        await runner.run(stopping)
        await engine.dispose()
        _write_json(out, runner.visible)

    asyncio.run(main())


# --------------------------------------------------------------------------- the service side


async def _write(store: EventStore, rate: float, seconds: float, in_flight: int = 32
                 ) -> tuple[dict[str, float], dict[str, float], list[float], float]:
    """Append at ``rate`` events/s for ``seconds`` with at most ``in_flight`` appends
    under way (the pool's size; if the store cannot keep up the schedule slips, and the
    achieved rate says so). Return sent and committed times by id, append latencies
    and how long the writing took."""
    slots = asyncio.Semaphore(in_flight)
    sent: dict[str, float] = {}
    committed: dict[str, float] = {}
    latencies: list[float] = []
    tasks: set[asyncio.Task[None]] = set()
    total = int(rate * seconds)
    start = time.perf_counter()

    async def one(i: int) -> None:
        sent_at = time.time()
        event = new_event(i % 1000, sent_at=sent_at)
        t0 = time.perf_counter()
        try:
            await store.append(TENANT, f"e2e-{i}", 0, [event])
        finally:
            slots.release()
        latencies.append(time.perf_counter() - t0)
        committed[event.event_id] = time.time()
        sent[event.event_id] = sent_at

    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        task = asyncio.create_task(one(i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    return sent, committed, latencies, time.perf_counter() - start


async def run(rate: float = 500.0, seconds: float = 20.0, warmup: float = 2.0
              ) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    topic = f"crm.bench.e2e.{uuid.uuid4().hex[:8]}"
    with broker() as running, tempfile.TemporaryDirectory() as tmp:
        kafka = KafkaSettings(bootstrap_servers=running.bootstrap_servers, partitions=PARTITIONS)
        await ensure_topics(kafka, [topic])
        async with fresh_database("e2e") as url:
            engine = create_engine(url)
            store = EventStore(engine)
            await store.create_tables()
            writer_engine, writer = engine, store
            probe = LagProbe(topics=(topic,))
            await ProjectionRunner(probe, engine, kafka, catalog).create_tables()
            stop = ctx.Event()
            relay_ready, projector_ready = ctx.Event(), ctx.Event()
            relay_out, projector_out = f"{tmp}/relay.json", f"{tmp}/projector.json"
            children = [
                ctx.Process(target=relay_main, daemon=True,
                            args=(url, kafka.bootstrap_servers, topic, stop, relay_ready,
                                  relay_out)),
                ctx.Process(target=projector_main, daemon=True,
                            args=(url, kafka.bootstrap_servers, topic, stop, projector_ready,
                                  projector_out)),
            ]
            for child in children:
                child.start()
            try:
                for ready in (relay_ready, projector_ready):
                    if not await asyncio.to_thread(ready.wait, 60):
                        raise TimeoutError("relay or projector did not start")
                sent, committed, write_latencies, wrote = await _write(writer, rate,
                                                                       warmup + seconds)
                # Wait for the read model to show every event (or give up after 60 s).
                deadline = time.perf_counter() + 60
                while time.perf_counter() < deadline:
                    async with engine.connect() as conn:
                        seen = (await conn.execute(select(func.count()).select_from(probe.seen))
                                ).scalar_one()
                    if seen >= len(committed):
                        break
                    await asyncio.sleep(0.2)
            finally:
                stop.set()
                for child in children:
                    await asyncio.to_thread(child.join, 30)
                    if child.is_alive():
                        child.terminate()
            if writer_engine is not engine:
                await writer_engine.dispose()
            await engine.dispose()
            published = await asyncio.to_thread(_read_json, relay_out)
            visible = await asyncio.to_thread(_read_json, projector_out)
    cutoff = min(sent.values()) + warmup
    measured = [i for i, t in sent.items() if t >= cutoff]
    missing = [i for i in measured if i not in visible]
    lag = [visible[i] - committed[i] for i in measured if i in visible]
    to_broker = [published[i] - committed[i] for i in measured if i in published]
    from_broker = [visible[i] - published[i] for i in measured if i in visible and i in published]

    def ms(values: list[float], q: float) -> float:
        return round(percentile(values, q) * 1000, 1)

    return {
        "rate": rate, "achieved_rate": round(len(committed) / wrote, 1), "seconds": seconds,
        "events": len(measured), "missing": len(missing),
        "p50_ms": ms(lag, 0.5), "p99_ms": ms(lag, 0.99), "max_ms": ms(lag, 1.0),
        "relay_p50_ms": ms(to_broker, 0.5), "relay_p99_ms": ms(to_broker, 0.99),
        "projector_p50_ms": ms(from_broker, 0.5), "projector_p99_ms": ms(from_broker, 0.99),
        "append_p50_ms": ms(write_latencies, 0.5), "append_p99_ms": ms(write_latencies, 0.99),
    }
