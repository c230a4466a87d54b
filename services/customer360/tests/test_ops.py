"""The ops endpoints: dead letters per consumer, and a rebuild started over HTTP
(PostgreSQL + broker, the app's own lifespan running the projector)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from libs.events.kafka import KafkaSettings, dlq_topic
from services.customer360.tests.conftest import (
    CONTACTS_TOPIC,
    ContactsTopic,
    CustomerStream,
    eventually,
)
from services.customer360.tests.test_api import Service, register, service
from testing.consumers import send_retrying
from testing.problems import problem_of

__all__ = ["service"]  # the fixture, shared with test_api

OPS = "/api/v1/projections/customer360/ops"
REBUILDS = "/api/v1/projections/customer360/rebuilds"


def as_role(service: Service, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {service.token('acme', (role,))}"}


async def test_ops_figures_and_rebuilds_are_refused_to_roles_without_them(
    service: Service,
) -> None:
    for role in ("viewer", "sales", "support"):
        read = await service.client.get(OPS, headers=as_role(service, role))
        start = await service.client.post(REBUILDS, headers=as_role(service, role))
        assert read.status_code == start.status_code == 403
        assert "ops:" in problem_of(read)["detail"] + problem_of(start)["detail"]
    # A manager reads the figures but does not start a rebuild.
    assert (await service.client.get(OPS, headers=as_role(service, "manager"))).status_code == 200
    refused = await service.client.post(REBUILDS, headers=as_role(service, "manager"))
    assert refused.status_code == 403
    problem_of(refused)
    assert service.app.state.rebuilds.latest is None


async def test_dead_letters_are_counted_per_consumer_and_topic(
    service: Service, contacts: ContactsTopic, kafka: KafkaSettings
) -> None:
    stream = CustomerStream("acme")
    await contacts.publish(register(stream))
    await service.get(f"/api/v1/customers/{stream.customer_id}/360", min_version=1, wait_ms=10_000)
    before = (await service.client.get(OPS, headers=as_role(service, "manager"))).json()
    held = {d["topic"]: d for d in before["dead_letters"]}
    assert held[CONTACTS_TOPIC]["dlq_topic"] == dlq_topic(CONTACTS_TOPIC)
    assert held[CONTACTS_TOPIC]["consumer"].startswith("customer360")
    already = held[CONTACTS_TOPIC]["messages"]

    # A message no reader can decode goes to the DLQ, and the count says so.
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
    await producer.start()
    try:
        await send_retrying(producer, CONTACTS_TOPIC, key=b"x", value=b"{not an event")
    finally:
        await producer.stop()

    async def counted() -> bool:
        report = (await service.client.get(OPS, headers=as_role(service, "admin"))).json()
        now = {d["topic"]: d["messages"] for d in report["dead_letters"]}
        return bool(now[CONTACTS_TOPIC] == already + 1)

    await eventually(counted, timeout=30)


async def test_the_operator_rebuilds_and_follows_it_and_a_second_start_is_a_conflict(
    service: Service, contacts: ContactsTopic
) -> None:
    streams = [CustomerStream("acme") for _ in range(3)]
    await contacts.publish(*(register(s) for s in streams))
    for s in streams:
        await service.get(f"/api/v1/customers/{s.customer_id}/360", min_version=1, wait_ms=10_000)
    refused = await service.client.post(REBUILDS, headers=as_role(service, "admin"))
    assert refused.status_code == 403  # a tenant's admin does not act on every tenant
    operator = as_role(service, "operator")

    started = await service.client.post(REBUILDS, headers=operator)
    again = await service.client.post(REBUILDS, headers=operator)

    assert started.status_code == 202
    job = started.json()
    assert job["state"] == "running"
    assert started.headers["Location"] == f"{REBUILDS}/{job['id']}"
    assert again.status_code == 409
    conflict = problem_of(again)
    assert conflict["rebuild_id"] == job["id"]

    async def activated() -> bool:
        followed = await service.client.get(started.headers["Location"], headers=operator)
        assert followed.status_code == 200
        state = followed.json()["state"]
        assert state in {"running", "activated"}, followed.json()
        return bool(state == "activated")

    await eventually(activated, timeout=60, every=0.2)
    done = (await service.client.get(started.headers["Location"], headers=operator)).json()
    assert done["generation"] == 2
    assert done["read"] == done["target"] >= 3
    # The ops report shows the finished rebuild, and the new generation serves the view.
    report = (await service.client.get(OPS, headers=operator)).json()
    assert report["rebuild"]["id"] == job["id"]

    async def serving_generation_2() -> bool:
        status = (await service.client.get(OPS, headers=operator)).json()
        return bool(status["generation"] == 2)

    await eventually(serving_generation_2, timeout=30)
    view = await service.get(f"/api/v1/customers/{streams[0].customer_id}/360")
    assert view.status_code == 200
    # Once it ended, another may start.
    assert (await service.client.post(REBUILDS, headers=operator)).status_code == 202


async def test_an_unknown_rebuild_is_not_found(service: Service) -> None:
    response = await service.client.get(f"{REBUILDS}/nope", headers=as_role(service, "admin"))
    assert response.status_code == 404
    assert problem_of(response)["rebuild_id"] == "nope"


SHARED_OPS = "/api/v1/ops/customer360"
SHARED_REBUILDS = f"{SHARED_OPS}/projections/customer360/rebuilds"


async def test_the_shared_ops_route_and_this_one_start_and_show_the_same_rebuild(
    service: Service, contacts: ContactsTopic
) -> None:
    stream = CustomerStream("acme")
    await contacts.publish(register(stream))
    await service.get(f"/api/v1/customers/{stream.customer_id}/360", min_version=1, wait_ms=10_000)
    operator = as_role(service, "operator")
    shared = (await service.client.get(SHARED_OPS, headers=operator)).json()
    # customer360 writes no events: no outbox; one projection, rebuildable.
    assert shared["outbox"] is None
    (projection,) = shared["projections"]
    assert projection["name"] == "customer360" and projection["rebuildable"] is True
    assert {d["topic"] for d in projection["dead_letters"]} >= {CONTACTS_TOPIC}

    started = await service.client.post(SHARED_REBUILDS, headers=operator)
    through_alias = await service.client.post(REBUILDS, headers=operator)

    assert started.status_code == 202, started.text
    job = started.json()
    assert started.headers["Location"] == f"{SHARED_REBUILDS}/{job['id']}"
    assert through_alias.status_code == 409
    assert problem_of(through_alias)["rebuild_id"] == job["id"]
    alias_view = (await service.client.get(f"{REBUILDS}/{job['id']}", headers=operator)).json()
    assert alias_view["id"] == job["id"]

    async def activated() -> bool:
        report = (await service.client.get(SHARED_OPS, headers=operator)).json()
        (now,) = report["projections"]
        return bool(now["rebuild"]["state"] == "activated" and now["generation"] == 2)

    await eventually(activated, timeout=60, every=0.2)
    assert (await service.client.get(OPS, headers=operator)).json()["rebuild"]["id"] == job["id"]
