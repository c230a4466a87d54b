"""The loyalty service's ops report: the earning reactions' lag and dead letters per
source topic (PostgreSQL + broker). Earning appends points, so it is not rebuilt."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from libs.events.kafka import dlq_topic, ensure_topics, service_topic
from services.loyalty.tests.conftest import Api
from testing.consumers import eventually, send_retrying
from testing.problems import problem_of

OPS = "/api/v1/ops/loyalty"
PIPELINE = service_topic("pipeline")


async def report(api: Api) -> dict[str, Any]:
    response = await api.client.get(OPS, headers=api.auth(roles=("manager",)))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def held(now: dict[str, Any], topic: str) -> int | None:
    (earning,) = now["projections"]
    counts: dict[str, int | None] = {d["topic"]: d["messages"] for d in earning["dead_letters"]}
    return counts[topic]


async def test_a_message_earning_cannot_read_is_counted_in_its_topic_s_dead_letters(
    api: Api,
) -> None:
    await ensure_topics(api.kafka, [PIPELINE])
    (earning,) = (await report(api))["projections"]
    assert earning["name"] == "loyalty_earning" and earning["rebuildable"] is False
    assert {d["dlq_topic"] for d in earning["dead_letters"]} == {
        dlq_topic(service_topic(s)) for s in ("pipeline", "contacts", "tickets")
    }
    before = held(await report(api), PIPELINE) or 0

    producer = AIOKafkaProducer(bootstrap_servers=api.kafka.bootstrap_servers)
    await producer.start()
    try:
        await send_retrying(producer, PIPELINE, key=b"c-1", value=b"{not an event")
    finally:
        await producer.stop()

    async def counted() -> bool:
        return held(await report(api), PIPELINE) == before + 1

    await eventually(counted, timeout=30)

    # The reactions carried on past it: nothing waits on the topic.
    async def caught_up() -> bool:
        (now,) = (await report(api))["projections"]
        return bool(now["lag_events"] == 0 and now["stalled"] is False)

    await eventually(caught_up, timeout=30)
    assert (await report(api))["outbox"]["events"] == 0


async def test_earning_is_watched_but_not_rebuilt(api: Api) -> None:
    response = await api.client.post(
        f"{OPS}/projections/loyalty_earning/rebuilds", headers=api.auth(roles=("operator",))
    )
    assert response.status_code == 409
    assert problem_of(response)["code"] == "not_rebuildable"
