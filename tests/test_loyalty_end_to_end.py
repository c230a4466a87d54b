"""Loyalty on `make run`'s setup, through the gateway: a customer registered in contacts,
orders as the pipeline publishes them, points, a partial refund that takes the tier away,
a redemption and a check-in."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from libs.auth import issue_token
from libs.events.catalog import DomainEvent
from libs.events.catalog.pipeline import OrderPlaced, OrderRefunded
from libs.events.envelope import EventEnvelope
from libs.events.kafka import KafkaSettings, ensure_topics, new_producer, service_topic
from libs.platform.settings import ServiceSettings
from testing.consumers import send_retrying
from tests.conftest import CLIENT_TIMEOUT, RunningPlatform, body_until, view_until

TENANT = "loyalty-e2e"


@pytest.fixture(scope="module")
def client(platform: RunningPlatform) -> httpx.Client:
    token = issue_token(ServiceSettings().auth(), "lead@e2e", TENANT, ["admin"])
    return httpx.Client(
        base_url=platform.gateway,
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    )


def publish_order_event(
    platform: RunningPlatform, customer_id: str, event: DomainEvent, tenant: str = TENANT
) -> None:
    """As the pipeline's relay publishes: binary CloudEvents keyed by the customer."""
    envelope = EventEnvelope(
        id=str(uuid.uuid4()),
        source="/crm/pipeline",
        type=type(event).type_name,
        subject=customer_id,
        time=datetime.now(UTC),
        tenantid=tenant,
        partitionkey=customer_id,
        sequence=1,
        data=event.model_dump(mode="json"),
    )

    async def send() -> None:
        kafka = KafkaSettings(bootstrap_servers=platform.bootstrap)
        topic = service_topic("pipeline")
        await ensure_topics(kafka, [topic])
        producer = new_producer(kafka, client_id="loyalty-e2e")
        await producer.start()
        try:
            record = envelope.to_kafka()
            await send_retrying(
                producer, topic, key=record.key, value=record.value, headers=record.headers
            )
        finally:
            await producer.stop()

    asyncio.run(send())


def loyalty_until(client: httpx.Client, customer_id: str, wanted: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = body_until(
        client,
        f"/api/v1/customers/{customer_id}/loyalty",
        lambda body: all(body.get(k) == v for k, v in wanted.items()),
    )
    return found


def test_order_refund_redemption_and_check_in_through_the_gateway(
    platform: RunningPlatform, client: httpx.Client
) -> None:
    rules = {
        "tiers": [
            {"name": "普通会员", "threshold": 0},
            {"name": "silver", "threshold": 100_000, "multiplier": "1"},
        ],
        "check_in_points": 3,
    }
    assert client.put("/api/v1/loyalty/rules", json=rules).status_code == 200
    registered = client.post("/api/v1/customers", json={"kind": "person", "name": "李雷"})
    assert registered.status_code == 201, registered.text
    customer_id = registered.json()["id"]
    loyalty_until(client, customer_id, {"balance": 0})

    publish_order_event(
        platform,
        customer_id,
        OrderPlaced(
            order_id="o-1",
            customer_id=customer_id,
            currency="CNY",
            total=150_000,
            placed_at=datetime.now(UTC),
        ),
    )
    loyalty_until(client, customer_id, {"balance": 1_500, "tier": "silver"})

    publish_order_event(
        platform,
        customer_id,
        OrderRefunded(
            order_id="o-1",
            customer_id=customer_id,
            refund_id="r-1",
            amount=100_000,
            currency="CNY",
            remaining=50_000,
        ),
    )
    loyalty_until(client, customer_id, {"balance": 500, "tier": "普通会员"})

    assert (
        client.put("/api/v1/loyalty/rewards/cup", json={"name": "Cup", "cost": 200}).status_code
        == 201
    )
    redeemed = client.post(
        f"/api/v1/customers/{customer_id}/loyalty/redemptions",
        json={"reward_id": "cup"},
        headers={"Idempotency-Key": "till-1"},
    )
    assert redeemed.status_code == 201, redeemed.text
    checked_in = client.post(f"/api/v1/customers/{customer_id}/loyalty/check-ins")
    assert checked_in.status_code == 201 and checked_in.json()["streak"] == 1
    assert client.post(f"/api/v1/customers/{customer_id}/loyalty/check-ins").status_code == 409
    lines = client.get(f"/api/v1/customers/{customer_id}/loyalty/ledger").json()["lines"]
    assert [line["points"] for line in lines] == [1_500, -1_000, -200, 3]

    # The 360 view's loyalty section folds the same ledger to the same balance.
    account = view_until(client, customer_id, lambda v: (v["loyalty"] or {}).get("balance") == 303)[
        "loyalty"
    ]
    assert account["tier"] == "普通会员"
    assert sorted(line["points"] for line in account["lines"]) == [-1_000, -200, 3, 1_500]


def test_referral_and_survey_bonuses_through_the_gateway(platform: RunningPlatform) -> None:
    """Contacts records who referred a customer; the referred customer's first order
    earns the referrer the tenant's referral bonus, once; an NPS answer earns the
    survey bonus (decision 0040)."""
    tenant = "loyalty-bonus-e2e"
    token = issue_token(ServiceSettings().auth(), "lead@e2e", tenant, ["admin"])
    client = httpx.Client(
        base_url=platform.gateway,
        headers={"Authorization": f"Bearer {token}"},
        timeout=CLIENT_TIMEOUT,
    )
    rules = {"referral_bonus": 300, "survey_bonus": 20, "check_in_points": 0}
    assert client.put("/api/v1/loyalty/rules", json=rules).status_code == 200
    friend = client.post("/api/v1/customers", json={"kind": "person", "name": "韩梅梅"})
    newcomer = client.post("/api/v1/customers", json={"kind": "person", "name": "李华"})
    assert friend.status_code == newcomer.status_code == 201
    friend_id, newcomer_id = friend.json()["id"], newcomer.json()["id"]
    referral = client.put(
        f"/api/v1/customers/{newcomer_id}/referrer", json={"referrer_id": friend_id}
    )
    assert referral.status_code == 200, referral.text
    itself = client.put(f"/api/v1/customers/{friend_id}/referrer", json={"referrer_id": friend_id})
    assert itself.status_code == 422, itself.text
    loyalty_until(client, friend_id, {"balance": 0})

    for n in (1, 2):
        event = OrderPlaced(
            order_id=f"first-{n}",
            customer_id=newcomer_id,
            currency="CNY",
            total=10_000,
            placed_at=datetime.now(UTC),
        )
        publish_order_event(platform, newcomer_id, event, tenant)
    loyalty_until(client, newcomer_id, {"balance": 200})
    loyalty_until(client, friend_id, {"balance": 300})

    survey = client.post(f"/api/v1/customers/{friend_id}/nps-survey")
    assert survey.status_code == 201, survey.text
    customer_side = httpx.Client(base_url=platform.gateway, timeout=CLIENT_TIMEOUT)
    answer = customer_side.post(f"{survey.json()['link']}/answer", json={"score": 9})
    assert answer.status_code == 201, answer.text
    loyalty_until(client, friend_id, {"balance": 320})
    lines = client.get(f"/api/v1/customers/{friend_id}/loyalty/ledger").json()["lines"]
    assert [(line["detail"]["reason"], line["points"]) for line in lines] == [
        ("referral", 300),
        ("survey", 20),
    ]
    assert lines[0]["source_event_id"] == f"referral:{newcomer_id}"
    account = view_until(client, friend_id, lambda v: (v["loyalty"] or {}).get("balance") == 320)[
        "loyalty"
    ]
    assert sorted(line["reason"] for line in account["lines"]) == ["referral", "survey"]
