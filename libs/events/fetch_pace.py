"""How long a consumer's fetches wait on the broker: short while records come, longer
once nothing came for a while, so an idle platform idles (decision 0107)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer

from libs.events.kafka import KafkaSettings


class FetchPace:
    """How long a consumer's fetches wait on the broker: the configured wait while
    records come, the idle wait once none came for ``idle_after_seconds`` (decision
    0107). ``getmany`` returns as soon as records are there, so its own timeout grows
    with it at no cost: fewer rounds of the loop's checks while nothing happens."""

    BUSY_POLL_MS = 100
    IDLE_POLL_MS = 1000

    def __init__(self, consumer: AIOKafkaConsumer, kafka: KafkaSettings) -> None:
        self.consumer = consumer
        self.busy_wait_ms = kafka.fetch_max_wait_ms
        self.idle_wait_ms = max(kafka.idle_fetch_max_wait_ms, kafka.fetch_max_wait_ms)
        self.idle_after = kafka.idle_after_seconds
        self.idle = False
        self.poll_ms = self.BUSY_POLL_MS
        self._quiet_since: float | None = None

    def fetched(self, anything: bool) -> None:
        now = asyncio.get_running_loop().time()
        if anything:
            self._quiet_since = None
            if self.idle:
                self._pace(idle=False)
            return
        if self._quiet_since is None:
            self._quiet_since = now
        elif not self.idle and now - self._quiet_since >= self.idle_after:
            self._pace(idle=True)

    @property
    def fetch_wait_ms(self) -> int | None:
        """What the next fetch request asks the broker to wait (None: not known)."""
        fetcher = getattr(self.consumer, "_fetcher", None)
        return getattr(fetcher, "_fetch_max_wait_ms", None)

    def _pace(self, *, idle: bool) -> None:
        self.idle = idle
        self.poll_ms = self.IDLE_POLL_MS if idle else self.BUSY_POLL_MS
        # aiokafka builds each fetch request from this attribute; it has no public
        # setter. Without it (another aiokafka), fetches keep the configured wait.
        fetcher = getattr(self.consumer, "_fetcher", None)
        if fetcher is not None and hasattr(fetcher, "_fetch_max_wait_ms"):
            fetcher._fetch_max_wait_ms = self.idle_wait_ms if idle else self.busy_wait_ms
