"""After an erasure the 360 view's SQLite files hold no trace of the person: not in
the database file's free space, not in the write-ahead log (the embedded default)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.events.catalog.contacts import CustomerRegistered, InteractionLogged, PersonalDataErased
from libs.events.kafka import KafkaSettings
from services.customer360.tests.conftest import T0, ContactsTopic, CustomerStream, RunningProjector

# ASCII on purpose: found in the raw bytes whatever encoding a column uses.
TRACES = (b"quillfeather", b"nadia.q@example.com", b"7911123456", b"her divorce")


def traces_in(directory: Path) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    for file in sorted(directory.iterdir()):
        content = file.read_bytes().lower()
        hits = [trace for trace in TRACES if trace in content]
        if hits:
            found[file.name] = hits
    return found


async def test_an_erased_customer_leaves_no_bytes_in_the_sqlite_files(
    sqlite_engine: AsyncEngine, kafka: KafkaSettings, contacts: ContactsTopic, tmp_path: Path
) -> None:
    projector = RunningProjector(sqlite_engine, kafka)
    await projector.start()
    try:
        stream = CustomerStream("acme")
        await contacts.publish(
            stream(CustomerRegistered(
                customer_id=stream.customer_id, tenant_id="acme", kind="person",
                name="Nadia Quillfeather", email="nadia.q@example.com", phone="+447911123456",
                registered_at=T0,
            )),
            stream(InteractionLogged(
                customer_id=stream.customer_id, interaction_id="i-1", channel="phone",
                direction="inbound", summary="talked about her divorce", by="u-1",
                occurred_at=T0,
            )),
        )
        # Neighbours on the same pages: the erased rows' old bytes would stay in
        # the pages' free space between them.
        neighbours = [CustomerStream("acme") for _ in range(20)]
        await contacts.publish(*(
            neighbour(CustomerRegistered(
                customer_id=neighbour.customer_id, tenant_id="acme", kind="person",
                name=f"Neighbour {n}", registered_at=T0,
            ))
            for n, neighbour in enumerate(neighbours)
        ))
        await projector.until_version("acme", stream.customer_id, 2)
        assert traces_in(tmp_path)  # the data really is in the files

        await contacts.publish(stream(PersonalDataErased(
            customer_id=stream.customer_id, erased_at=T0 + timedelta(days=1), by="u-admin"
        )))
        await projector.until_version("acme", stream.customer_id, 3)

        # The batch that erased commits first (the view shows version 3), then the
        # projector checkpoints the WAL away: give it the moment that takes.
        for _ in range(100):
            if not traces_in(tmp_path):
                break
            await asyncio.sleep(0.1)
        assert traces_in(tmp_path) == {}
    finally:
        await projector.close()
