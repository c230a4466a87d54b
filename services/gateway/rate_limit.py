"""Rate limits: a token bucket per tenant and one per caller, in this process's memory;
and a cap on the requests each may have in flight at once.

A request needs a token from both buckets: the caller's keeps one integration or
user from starving its colleagues, the tenant's keeps one tenant from starving the
others. Memory per process is deliberate: no shared store on the hot path, and
with N gateway processes the effective limit is at most N times the setting, which
is what capacity planning needs anyway. The clock is injected so tests never sleep.

A rate says nothing about how long each request holds the gateway: a client that
sends half a body and stalls is one request a minute and still holds a connection
to the service. ``InFlightLimits`` counts what each caller and tenant holds, so a
slow client runs out of its own share and nobody else's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from libs.platform.errors import DomainError

Clock = Callable[[], float]
LimitName = Literal["tenant", "caller", "tenant_in_flight", "caller_in_flight"]


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


class InFlightLimits:
    """At most ``per_caller`` requests in flight per caller and ``per_tenant`` per tenant
    (0: no limit). ``hold`` counts one in; the ``Held`` it returns counts it out."""

    def __init__(self, *, per_caller: int, per_tenant: int) -> None:
        self.per_caller = per_caller
        self.per_tenant = per_tenant
        self._callers: dict[str, int] = {}
        self._tenants: dict[str, int] = {}

    def hold(self, tenant_id: str, subject: str) -> Held:
        caller_key = f"{tenant_id}\x00{subject}"
        if self.per_caller and self._callers.get(caller_key, 0) >= self.per_caller:
            raise self._refused("caller_in_flight", f"caller {subject}", self.per_caller)
        if self.per_tenant and self._tenants.get(tenant_id, 0) >= self.per_tenant:
            raise self._refused("tenant_in_flight", f"tenant {tenant_id}", self.per_tenant)
        _count_in(self._callers, caller_key)
        _count_in(self._tenants, tenant_id)
        return Held(self, tenant_id, caller_key)

    def in_flight(self, tenant_id: str, subject: str | None = None) -> int:
        if subject is None:
            return self._tenants.get(tenant_id, 0)
        return self._callers.get(f"{tenant_id}\x00{subject}", 0)

    def _release(self, tenant_id: str, caller_key: str) -> None:
        _count_out(self._callers, caller_key)
        _count_out(self._tenants, tenant_id)

    @staticmethod
    def _refused(limit: LimitName, scope: str, most: int) -> RateLimited:
        return RateLimited(
            f"{scope} already has {most} requests in flight; retry when one is answered",
            headers={"Retry-After": "1"},
            limit=limit,
            retry_after_seconds=1,
        )


class Held:
    """One request counted in; ``release`` counts it out once, however often it is called."""

    __slots__ = ("_caller_key", "_limits", "_tenant_id")

    def __init__(self, limits: InFlightLimits, tenant_id: str, caller_key: str) -> None:
        self._limits: InFlightLimits | None = limits
        self._tenant_id = tenant_id
        self._caller_key = caller_key

    def release(self) -> None:
        if self._limits is not None:
            self._limits._release(self._tenant_id, self._caller_key)
            self._limits = None


def _count_in(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def _count_out(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 0) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)  # no entry is zero: the maps hold only who is busy now
