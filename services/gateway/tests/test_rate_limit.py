"""Rate limits per tenant and per caller: token buckets, 429 with Retry-After."""

from __future__ import annotations

import pytest

from services.gateway.open_resources import worker_rate_limits
from services.gateway.rate_limit import RateLimited, RateLimits, TokenBucketLimiter
from services.gateway.tests.support import bearer, gateway_settings, open_gateway
from services.gateway.tests.upstreams import UpstreamServer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits(
    clock: FakeClock, *, tenant: tuple[float, int] = (100, 100), caller: tuple[float, int] = (1, 3)
) -> RateLimits:
    return RateLimits(
        tenant=TokenBucketLimiter(*tenant, clock=clock),
        caller=TokenBucketLimiter(*caller, clock=clock),
    )


def test_a_caller_may_burst_then_waits_for_the_refill() -> None:
    clock = FakeClock()
    rate_limits = limits(clock, caller=(1, 3))
    for _ in range(3):
        rate_limits.admit("acme", "user-1")

    with pytest.raises(RateLimited) as refused:
        rate_limits.admit("acme", "user-1")

    assert refused.value.body() == {
        "type": "about:blank",
        "title": "Too Many Requests",
        "status": 429,
        "detail": "rate limit exceeded for caller user-1, retry in 1 s",
        "limit": "caller",
        "retry_after_seconds": 1,
    }
    assert refused.value.headers == {"Retry-After": "1"}
    clock.now += 1
    rate_limits.admit("acme", "user-1")


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    clock = FakeClock()
    rate_limits = limits(clock, caller=(0.25, 1))
    rate_limits.admit("acme", "user-1")

    with pytest.raises(RateLimited) as refused:
        rate_limits.admit("acme", "user-1")

    assert refused.value.headers == {"Retry-After": "4"}


def test_the_tenants_bucket_is_shared_by_its_callers_only() -> None:
    clock = FakeClock()
    rate_limits = limits(clock, tenant=(1, 2), caller=(100, 100))
    rate_limits.admit("acme", "user-1")
    rate_limits.admit("acme", "user-2")

    with pytest.raises(RateLimited) as refused:
        rate_limits.admit("acme", "user-3")

    assert refused.value.extra["limit"] == "tenant"
    rate_limits.admit("globex", "user-1")  # another tenant is not slowed down


def test_the_same_subject_in_two_tenants_has_two_buckets() -> None:
    clock = FakeClock()
    rate_limits = limits(clock, caller=(1, 1))
    rate_limits.admit("acme", "sync")

    rate_limits.admit("globex", "sync")


def test_a_refused_request_costs_no_tokens() -> None:
    clock = FakeClock()
    rate_limits = limits(clock, tenant=(1, 1), caller=(1, 5))
    rate_limits.admit("acme", "user-1")
    for _ in range(3):
        with pytest.raises(RateLimited):
            rate_limits.admit("acme", "user-1")

    clock.now += 1
    rate_limits.admit("acme", "user-1")
    # The caller's bucket lost one token for each admitted request only.
    assert rate_limits.caller.wait_seconds("acme\x00user-1") == 0


def test_a_rate_of_zero_switches_the_limit_off() -> None:
    clock = FakeClock()
    rate_limits = limits(clock, tenant=(0, 1), caller=(0, 1))

    for _ in range(1000):
        rate_limits.admit("acme", "user-1")


def test_idle_full_buckets_are_forgotten() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(10, 10, clock=clock)
    limiter.SWEEP_ABOVE = 3
    for caller in ("a", "b", "c"):
        limiter.take(caller)
    clock.now += 5  # long enough for every bucket to be full again

    limiter.take("d")

    assert set(limiter._buckets) == {"d"}


async def test_the_gateway_answers_429_with_retry_after(
    pg_url: str, contacts_service: UpstreamServer, customer360_service: UpstreamServer
) -> None:
    settings = gateway_settings(
        pg_url,
        contacts_service.url,
        customer360_service.url,
        rate_limit_caller_per_second=1,
        rate_limit_caller_burst=2,
    )
    async with open_gateway(settings) as gateway:
        statuses = [
            (await gateway.get("/api/v1/customers", headers=bearer(subject="busy"))).status_code
            for _ in range(2)
        ]
        refused = await gateway.get("/api/v1/customers", headers=bearer(subject="busy"))
        colleague = await gateway.get("/api/v1/customers", headers=bearer(subject="calm"))

    assert statuses == [200, 200]
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["limit"] == "caller"
    assert refused.json()["retry_after_seconds"] == 1
    assert colleague.status_code == 200


async def test_an_api_key_is_limited_as_its_own_caller(
    pg_url: str, contacts_service: UpstreamServer, customer360_service: UpstreamServer
) -> None:
    settings = gateway_settings(
        pg_url,
        contacts_service.url,
        customer360_service.url,
        rate_limit_caller_per_second=0.1,
        rate_limit_caller_burst=3,
    )
    async with open_gateway(settings) as gateway:
        # The admin's own budget of 3 pays for creating the key.
        created = await gateway.post(
            "/api/v1/api-keys",
            json={"name": "ERP", "roles": ["integration"]},
            headers=bearer(roles=["admin"], subject="admin-1"),
        )
        key = {"X-API-Key": created.json()["key"]}
        answered = [
            (await gateway.get("/api/v1/customers", headers=key)).status_code for _ in range(4)
        ]

    assert answered == [200, 200, 200, 429]


def test_worker_processes_share_the_configured_limits_between_them() -> None:
    settings = gateway_settings(
        "sqlite://", "http://contacts", "http://customer360",
        rate_limit_tenant_per_second=100, rate_limit_tenant_burst=40,
        rate_limit_caller_per_second=10, rate_limit_caller_burst=1, workers=2,
    )

    limits = worker_rate_limits(settings)

    assert (limits.tenant.per_second, limits.tenant.burst) == (50, 20)
    assert (limits.caller.per_second, limits.caller.burst) == (5, 1)  # never below one
