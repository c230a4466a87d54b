"""What the handlers need, wired once by ``app.create_app``: the service's name and
event source, and each tenant's context for live assessment, reused a while."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog.alerts import ChurnRules
from libs.events.write_path import HandlerContext
from services.alerts.domain.signals import Context
from services.alerts.handlers.ranking import context_for

SERVICE = "alerts"
# Past contexts kept at once (a tenant and a time each).
PAST_CONTEXTS = 16


@dataclass
class Alerts(HandlerContext):
    """What the handlers need, wired once by ``app.create_app`` (tests wire their own)."""

    service: ClassVar[str] = SERVICE

    # How long live assessment (projector, sweep) reuses a tenant's context: reading
    # every order of the tenant per batch would make each batch cost the tenant's size
    # (0: read it every time; scoring as of a time always reads it).
    context_seconds: float = 0.0
    _contexts: dict[str, tuple[float, str, ChurnRules, Context]] = field(
        default_factory=dict, repr=False
    )
    _past: dict[tuple[str, str], tuple[float, ChurnRules, Context]] = field(
        default_factory=dict, repr=False
    )

    async def live_context(
        self, conn: AsyncConnection, tenant_id: str, rules: ChurnRules, now: datetime
    ) -> Context:
        """The tenant's context for assessing as of now, reused for ``context_seconds``
        while the rules and the day stay the same."""
        cached = self._contexts.get(tenant_id)
        day = now.date().isoformat()
        if (
            cached is not None
            and time.monotonic() - cached[0] < self.context_seconds
            and cached[1] == day
            and cached[2] == rules
        ):
            return cached[3]
        context = await context_for(conn, tenant_id, rules, now)
        if self.context_seconds > 0:
            self._contexts[tenant_id] = (time.monotonic(), day, rules, context)
        return context

    async def past_context(
        self, conn: AsyncConnection, tenant_id: str, rules: ChurnRules, when: datetime
    ) -> Context:
        """The tenant's context as of a past ``when``, reused for ``context_seconds``:
        one customer after another looked at as of one date (the 360 view's as_of)
        learns the tenant's past once, not per customer."""
        key = (tenant_id, when.isoformat())
        cached = self._past.get(key)
        if (
            cached is not None
            and time.monotonic() - cached[0] < self.context_seconds
            and cached[1] == rules
        ):
            return cached[2]
        context = await context_for(conn, tenant_id, rules, when)
        if self.context_seconds > 0:
            if len(self._past) >= PAST_CONTEXTS:
                self._past.pop(next(iter(self._past)))  # the oldest asked for
            self._past[key] = (time.monotonic(), rules, context)
        return context
