"""d. Overload (issue 25, decision 0102): twice the measured capacity offered.

On the platform of ``bench/http.py`` (as ``make run`` starts it, on PostgreSQL), for a
target (straight to contacts, or through the gateway): registrations at half the
capacity for a while (the calm before), then at twice the capacity for the surge
(open loop: request i is sent at t0 + i/rate whatever happened to the others), then
at half again (the calm after). Each answer is sorted: 201 (completed), 503 or 429
(refused: the platform shedding what it cannot serve), anything else or no answer
(an error). What it shows: the completed rate during the surge as a share of the
capacity, how fast the refusals came, whether any error (or loss) appeared, and the
p99 of the calm after beside the calm before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.common import percentile
from bench.http import CpuMeter, People, Users, attempt, log, open_loop, register

OVERLOAD_USERS = 512
REFUSED = ("503", "429")


@dataclass
class Answers:
    completed: list[float] = field(default_factory=list)
    refused: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    retry_after: int = 0

    def ms(self, values: list[float], q: float) -> float | None:
        return round(percentile(values, q) * 1000, 1) if values else None


async def _phase(
    users: Users, people: People, rate: float, seconds: float, meter: CpuMeter
) -> tuple[dict[str, Any], Answers]:
    answers = Answers()

    async def fire(at: float, measured: bool) -> bool:
        async with users.one() as c:
            outcome = await attempt(lambda: register(c, people))
        if measured:
            took = time.perf_counter() - at
            status = outcome[0]
            if outcome[1]:
                answers.completed.append(took)
            elif status in REFUSED:
                answers.refused.append(took)
            else:
                answers.errors[status] = answers.errors.get(status, 0) + 1
        return outcome[1]

    result = await open_loop(rate, warmup=0.0, seconds=seconds, fire=fire, meter=meter)
    return result, answers


async def overload(
    url: str, bearer: str, capacity: float, surge_seconds: float, meter: CpuMeter,
    people: People,
) -> dict[str, Any]:
    """The calm before, the surge at twice ``capacity``, the calm after, against ``url``,
    registering ``people`` (new to the platform: a person registered twice is a 409)."""
    calm = max(1.0, capacity / 2)
    async with Users(url, bearer, OVERLOAD_USERS) as users:
        _, before = await _phase(users, people, calm, 10.0, meter)
        surge, during = await _phase(users, people, 2 * capacity, surge_seconds, meter)
        _, after = await _phase(users, people, calm, 10.0, meter)
    errors = sum(during.errors.values()) + surge["unfinished"]
    out = {
        "capacity": capacity,
        "offered_rate": surge["offered_rate"],
        "completed_rate": surge["achieved_rate"],
        "completed_share": round(surge["achieved_rate"] / capacity, 2) if capacity else None,
        "completed": len(during.completed),
        "refused": len(during.refused),
        "refused_p99_ms": during.ms(during.refused, 0.99),
        "errors": errors,
        "error_statuses": during.errors,
        "calm_before_p99_ms": before.ms(before.completed, 0.99),
        "calm_after_p99_ms": after.ms(after.completed, 0.99),
        "cpu_cores": surge["cpu_cores"],
    }
    log(f"  overload {url}: {out['completed_rate']}/s completed of {capacity}/s capacity "
        f"({out['completed_share']}x) at {out['offered_rate']}/s offered; refused "
        f"{out['refused']} (p99 {out['refused_p99_ms']} ms), errors {errors}; p99 calm "
        f"before/after {out['calm_before_p99_ms']}/{out['calm_after_p99_ms']} ms")
    return out
