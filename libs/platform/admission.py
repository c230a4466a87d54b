"""Admission: a service serves at most so many requests at once, lets so many more
wait their turn, and refuses the rest at once (decision 0102).

Past its capacity a process that takes every request makes each one wait longer
than its caller does: the work is done, the answers arrive after the callers left,
and what completes falls towards nothing. Bounding the requests in flight keeps the
admitted ones at the service's own pace; a bounded queue behind them absorbs a burst
(a client's 80 concurrent calls are all served); a request that finds the queue full
is answered 503 with ``Retry-After`` at once (in the platform's problem shape),
before any of its body is read, so nothing refused was begun and nothing admitted is
dropped. Probes and ``/metrics`` are never refused: an orchestrator must see a busy
service as alive.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from libs.platform.problems import PROBLEM_MEDIA_TYPE, problem_body

SHED = Counter(
    "crm_http_requests_shed_total",
    "Requests refused with 503 because the service was at capacity and its queue full",
    ["service"],
)
# Never refused: liveness, readiness, health and metrics.
ALWAYS_ADMITTED = ("/livez", "/readyz", "/healthz", "/metrics")
RETRY_AFTER_SECONDS = 1


class AdmissionLimit:
    """At most ``limit`` requests in flight and ``queue`` waiting for a slot; one more
    gets 503 with ``Retry-After``."""

    def __init__(self, app: ASGIApp, *, service: str, limit: int, queue: int) -> None:
        self.app = app
        self.limit = limit
        self.queue = queue
        self.waiting = 0
        self.shed = SHED.labels(service)
        self._slots: asyncio.Semaphore | None = None
        body = problem_body(
            503,
            f"the service is at capacity ({limit} requests in flight, {queue} waiting); "
            f"retry after {RETRY_AFTER_SECONDS} s",
            retry_after_seconds=RETRY_AFTER_SECONDS,
        )
        self.refusal = json.dumps(body).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(ALWAYS_ADMITTED):
            await self.app(scope, receive, send)
            return
        if self._slots is None:  # made on the serving loop, not at import
            self._slots = asyncio.Semaphore(self.limit)
        slots = self._slots
        if slots.locked():
            if self.waiting >= self.queue:
                self.shed.inc()
                await self._refuse(send)
                return
            self.waiting += 1
            try:
                await slots.acquire()
            finally:
                self.waiting -= 1
        else:
            await slots.acquire()  # a free slot: taken without waiting
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()

    async def _refuse(self, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(self.refusal)).encode()),
                    (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": self.refusal})
