"""Webhook targets checked at delivery, end to end (real PostgreSQL, the real broker,
real sockets): a name that resolves to an internal address is never connected to and
its delivery is given up with the reason; an address spelt oddly is refused when
subscribing; and a name is delivered to the address it was checked at."""

from __future__ import annotations

from libs.events.kafka import KafkaSettings, service_topic
from services.alerts.settings import Settings
from services.alerts.tests.conftest import eventually
from services.alerts.tests.test_webhook_connections import (
    Answers,
    Listener,
    listener,  # noqa: F401  (the fixture)
)
from services.alerts.tests.test_webhooks import (
    Receiver,
    counted,
    deliveries,
    hook_settings,  # noqa: F401  (the fixture)
    owner_changed,
    receiver,  # noqa: F401  (the fixture)
    running,
    subscribe,
    tenant,
)


async def test_a_name_resolving_to_loopback_gets_no_connection_and_fails_at_once(
    hook_settings: Settings,  # noqa: F811
    kafka: KafkaSettings,
    listener: Listener,  # noqa: F811
) -> None:
    acme = tenant()
    settings = hook_settings.model_copy(update={"webhook_allow_insecure_targets": False})
    # A public-looking name whose DNS answers the loopback address (rebinding, or a
    # record pointed at 127.0.0.1 on purpose).
    answers = Answers({"hooks.example": ["127.0.0.1"]})
    refused_before = counted(
        "crm_webhook_delivery_failures_total", channel="webhook", reason="refused"
    )
    async with running(settings, kafka, resolve=answers) as api:
        manager = api.auth(acme, roles=["manager"])
        for url in (
            "https://127.1:8443/",
            "https://2130706433:8443/",
            "https://0x7f000001:8443/",
            "https://[::ffff:7f00:1]:8443/",
        ):
            bad = await api.client.post(
                "/api/v1/webhooks", json={"url": url, "event_types": ["*"]}, headers=manager
            )
            assert bad.status_code == 422, url
            [problem] = bad.json()["errors"]
            assert problem["field"].split(".")[-1] == "url"
            assert "a loopback address" in problem["reason"], problem
        # A name is taken when subscribing: what it resolves to may change later.
        created = await subscribe(
            api, acme, Receiver(url=f"https://hooks.example:{listener.port}/hook")
        )
        event = owner_changed("c-1", acme)
        await api.send(service_topic("contacts"), [event])

        async def given_up() -> bool:
            log = await deliveries(api, acme, created["id"])
            return bool(log) and log[0]["status"] == "failed"

        await eventually(given_up)
        [delivery] = await deliveries(api, acme, created["id"])
    assert listener.connections == 0
    assert delivery["attempts"] == 1  # given up at once: no retry mends it
    assert delivery["last_error"] == (
        "refused: hooks.example resolves to 127.0.0.1, a loopback address"
    )
    assert [a["status_code"] for a in delivery["log"]] == [None]
    refused_after = counted(
        "crm_webhook_delivery_failures_total", channel="webhook", reason="refused"
    )
    assert refused_after - refused_before == 1


async def test_a_name_is_delivered_to_the_address_it_was_checked_at_with_its_host(
    hook_settings: Settings,  # noqa: F811
    kafka: KafkaSettings,
    receiver: Receiver,  # noqa: F811
) -> None:
    acme = tenant()
    # Insecure targets on (development): the loopback answer is let through, and the
    # only way to reach the receiver is the address the check was given.
    answers = Answers({"hooks.example": ["127.0.0.1"]})
    receiver.url = receiver.url.replace("127.0.0.1", "hooks.example")
    async with running(hook_settings, kafka, resolve=answers) as api:
        created = await subscribe(api, acme, receiver)
        receiver.statuses = [307]  # a redirect is a failed attempt, retried
        event = owner_changed("c-1", acme)
        await api.send(service_topic("contacts"), [event])

        async def delivered() -> bool:
            log = await deliveries(api, acme, created["id"])
            return bool(log) and log[0]["status"] == "delivered"

        await eventually(delivered)
        [delivery] = await deliveries(api, acme, created["id"])
    port = receiver.url.split(":")[2].split("/")[0]
    assert [r["status"] for r in receiver.of(event.id)] == [307, 200]
    assert all(r["headers"]["host"] == f"hooks.example:{port}" for r in receiver.of(event.id))
    assert all(r["verified"] for r in receiver.of(event.id))
    assert [a["error"] for a in delivery["log"]] == ["HTTP 307: redirects are not followed", None]
    assert ("hooks.example", int(port)) in answers.asked
