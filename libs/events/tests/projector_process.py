"""A projector in a process of its own, so a test can kill it mid-batch (SIGKILL)."""

from __future__ import annotations

import asyncio
import sys

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.consumer import ReceivedEvent
from libs.events.kafka import KafkaSettings
from libs.events.projection import ProjectionRunner
from libs.events.tests.sample import VisitTotals, catalog
from libs.platform.db import create_engine


class SlowVisitTotals(VisitTotals):
    """Slow enough that a kill lands inside a batch's transaction."""

    async def apply(self, conn: AsyncConnection, event: ReceivedEvent) -> None:
        await super().apply(conn, event)
        await asyncio.sleep(0.002)


async def main(url: str, bootstrap: str, topic: str) -> None:
    engine = create_engine(url)
    runner = ProjectionRunner(
        SlowVisitTotals(topics=(topic,)),
        engine,
        KafkaSettings(
            bootstrap_servers=bootstrap, session_timeout_ms=2000, heartbeat_interval_ms=500
        ),
        catalog,
        max_records=200,
    )
    await runner.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
