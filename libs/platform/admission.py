"""Admission: a service serves at most so many requests at once and refuses the rest
at once (decision 0102).

Past its capacity a process that takes every request makes each one wait longer
than its caller does: the work is done, the answers arrive after the callers left,
and what completes falls towards nothing. Bounding the requests in flight keeps the
admitted ones at the service's own pace; a request that finds no slot within
``wait`` is answered 503 with ``Retry-After`` (in the platform's problem shape),
before any of its body is read, so nothing refused was begun and nothing admitted
is dropped. Probes and ``/metrics`` are never refused: an orchestrator must see a
busy service as alive.
"""

from __future__ import annotations

import asyncio
import json

from prometheus_client import Counter
from starlette.types import ASGIApp, Receive, Scope, Send

from libs.platform.problems import PROBLEM_MEDIA_TYPE, problem_body

SHED = Counter(
    "crm_http_requests_shed_total",
    "Requests refused with 503 because the service was at capacity",
    ["service"],
)
# Never refused: liveness, readiness, health and metrics.
ALWAYS_ADMITTED = ("/livez", "/readyz", "/healthz", "/metrics")
RETRY_AFTER_SECONDS = 1


class AdmissionLimit:
    """At most ``limit`` requests in flight; one that waits longer than ``wait`` seconds
    for a slot gets 503 with ``Retry-After``."""

    def __init__(self, app: ASGIApp, *, service: str, limit: int, wait: float) -> None:
        self.app = app
        self.limit = limit
        self.wait = wait
        self.shed = SHED.labels(service)
        self._slots: asyncio.Semaphore | None = None
        body = problem_body(
            503,
            f"the service is at capacity ({limit} requests in flight); "
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
        if not slots.locked():
            await slots.acquire()  # a free slot: taken without waiting
        else:
            try:
                await asyncio.wait_for(slots.acquire(), self.wait)
            except TimeoutError:
                self.shed.inc()
                await self._refuse(send)
                return
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
