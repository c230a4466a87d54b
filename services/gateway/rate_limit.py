"""Rate limits: a token bucket per tenant and one per caller, in this process's memory.

A request needs a token from both buckets: the caller's keeps one integration or
user from starving its colleagues, the tenant's keeps one tenant from starving the
others. Memory per process is deliberate: no shared store on the hot path, and
with N gateway processes the effective limit is at most N times the setting, which
is what capacity planning needs anyway. The clock is injected so tests never sleep.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from libs.platform.errors import DomainError

Clock = Callable[[], float]
LimitName = Literal["tenant", "caller"]


class RateLimited(DomainError):
    """Too many requests: the body says which limit, Retry-After says when to come back."""

    status_code = 429


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_at: float


class TokenBucketLimiter:
    """Buckets of ``burst`` tokens refilled at ``per_second``, one per key."""

    # Beyond this many buckets, full ones are dropped: a full bucket is the same as none.
    SWEEP_ABOVE = 50_000

    def __init__(self, per_second: float, burst: int, *, clock: Clock = time.monotonic) -> None:
        self.per_second = per_second
        self.burst = float(burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.per_second > 0

    def wait_seconds(self, key: str) -> float:
        """0 when ``key`` may go now, else how long until it has a token."""
        if not self.enabled:
            return 0.0
        tokens = self._refilled(key).tokens
        return 0.0 if tokens >= 1 else (1 - tokens) / self.per_second

    def take(self, key: str) -> None:
        if self.enabled:
            self._refilled(key).tokens -= 1

    def _refilled(self, key: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.SWEEP_ABOVE:
                self._sweep(now)
            bucket = self._buckets[key] = _Bucket(tokens=self.burst, updated_at=now)
            return bucket
        elapsed = max(0.0, now - bucket.updated_at)
        bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.per_second)
        bucket.updated_at = now
        return bucket

    def _sweep(self, now: float) -> None:
        seconds_to_fill = self.burst / self.per_second
        self._buckets = {
            key: bucket
            for key, bucket in self._buckets.items()
            if now - bucket.updated_at < seconds_to_fill
        }


class RateLimits:
    """The two limits every authenticated request passes."""

    def __init__(self, *, tenant: TokenBucketLimiter, caller: TokenBucketLimiter) -> None:
        self.tenant = tenant
        self.caller = caller

    def admit(self, tenant_id: str, subject: str) -> None:
        """Spend one token of each bucket, or raise ``RateLimited`` and spend none.

        Checking both before taking from either means a refused request costs the
        caller nothing, so a client that honours Retry-After gets through then.
        """
        caller_key = f"{tenant_id}\x00{subject}"
        waits: list[tuple[float, LimitName]] = [
            (self.caller.wait_seconds(caller_key), "caller"),
            (self.tenant.wait_seconds(tenant_id), "tenant"),
        ]
        wait, limit = max(waits)
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            scope = f"tenant {tenant_id}" if limit == "tenant" else f"caller {subject}"
            raise RateLimited(
                f"rate limit exceeded for {scope}, retry in {retry_after} s",
                headers={"Retry-After": str(retry_after)},
                limit=limit,
                retry_after_seconds=retry_after,
            )
        self.caller.take(caller_key)
        self.tenant.take(tenant_id)
