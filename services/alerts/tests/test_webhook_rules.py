"""Webhook subscriptions and their delivery policy as pure rules: which types a
subscription gets, which targets are refused, how retries space out, when a
subscription is disabled, how a delivery is signed and framed."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from cloudevents.v1.http import from_http
from standardwebhooks import Webhook

from libs.events.catalog.alerts import WebhookDisabled, WebhookSubscriptionChanged
from libs.events.envelope import EventEnvelope
from services.alerts.notifications import domain
from services.alerts.notifications.domain import (
    DeliveryPolicy,
    InvalidSubscription,
    Subscription,
    after_attempt,
    check_event_types,
    check_target,
    matches,
    signing,
)
from services.alerts.notifications.domain.cloudevents_http import event_document, request_of
from services.alerts.notifications.handlers import PLATFORM

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
KNOWN = PLATFORM.types


def active(failures: int = 0) -> Subscription:
    return Subscription(
        "s-1",
        "webhook",
        "https://hooks.example/x",
        ("crm.alerts.*",),
        "structured",
        "active",
        failures,
        1,
    )


def test_a_service_wildcard_takes_every_type_of_that_service_and_no_other() -> None:
    assert matches(["crm.alerts.*"], "crm.alerts.alert_opened.v1")
    assert not matches(["crm.alerts.*"], "crm.tickets.ticket_opened.v1")
    assert matches(["crm.tickets.ticket_opened.*"], "crm.tickets.ticket_opened.v2")
    assert matches(["*"], "crm.pipeline.order_placed.v1")


def test_the_record_of_a_delivery_is_never_delivered_itself() -> None:
    # It would feed itself: each delivery of it would make another.
    assert not matches(["*"], "crm.alerts.notification_sent.v1")
    with pytest.raises(InvalidSubscription):
        check_event_types(["crm.alerts.notification_sent.v1"], KNOWN)


def test_a_type_or_wildcard_that_matches_nothing_published_is_refused() -> None:
    with pytest.raises(InvalidSubscription) as typo:
        check_event_types(["crm.alerts.alert_openned.v1"], KNOWN)
    assert typo.value.field == "event_types"
    with pytest.raises(InvalidSubscription):
        check_event_types(["crm.nothing.*"], KNOWN)
    with pytest.raises(InvalidSubscription):
        check_event_types(["crm.*.alert_opened.v1"], KNOWN)
    assert check_event_types(["crm.alerts.*", "crm.alerts.*"], KNOWN) == ("crm.alerts.*",)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example/x",  # not encrypted
        "https://127.0.0.1/x",
        "https://10.1.2.3/x",
        "https://localhost:8443/x",
        "https://[::1]/x",
        "ftp://hooks.example/x",
        "https://hooks.example/x#part",
        "mailto:not-an-address",
        "https://[::1/x",  # not a URL at all
        "https://hooks.example:port/x",
        "",
    ],
)
def test_a_target_that_is_not_a_public_https_url_or_an_address_is_refused(url: str) -> None:
    with pytest.raises(InvalidSubscription):
        check_target(url, allow_insecure=False)


def test_a_target_shows_no_query_or_credentials_in_events() -> None:
    target = check_target("https://u:p@hooks.example:8443/in?token=s3cret", allow_insecure=False)
    assert target.public == "https://hooks.example:8443/in"
    assert target.url.endswith("token=s3cret")
    email = check_target("mailto:ops@example.com", allow_insecure=False)
    assert (email.channel, email.public) == ("email", None)


def test_retries_double_from_the_first_and_stop_at_the_cap() -> None:
    policy = DeliveryPolicy(first_retry_seconds=5, max_backoff_seconds=60)
    assert [policy.backoff(n).total_seconds() for n in range(1, 6)] == [5, 10, 20, 40, 60]
    assert policy.backoff(2, jitter=1.0) == timedelta(seconds=12)


def test_a_failed_attempt_is_retried_until_the_last_then_given_up() -> None:
    policy = DeliveryPolicy(first_retry_seconds=5, max_attempts=3, disable_after=100)
    first = after_attempt(policy, active(), 1, False, T0)
    assert (first.status, first.next_attempt_at) == ("pending", T0 + timedelta(seconds=5))
    last = after_attempt(policy, active(2), 3, False, T0)
    assert (last.status, last.next_attempt_at, last.disable) == ("failed", None, None)


def test_failures_in_a_row_disable_the_subscription_and_a_success_resets_them() -> None:
    policy = DeliveryPolicy(disable_after=3)
    assert after_attempt(policy, active(1), 2, False, T0).disable is None
    third = after_attempt(policy, active(2), 3, False, T0)
    assert isinstance(third.disable, WebhookDisabled)
    assert third.disable.consecutive_failures == 3
    assert after_attempt(policy, active(2), 3, True, T0).consecutive_failures == 0


def test_enabling_a_disabled_subscription_again_resets_its_failures() -> None:
    disabled = Subscription(
        "s-1",
        "webhook",
        "https://h.example/",
        ("*",),
        "binary",
        "disabled",
        7,
        3,
        "7 delivery attempts failed in a row",
    )
    events = domain.change(
        disabled,
        target=None,
        event_types=None,
        content_mode=None,
        secret_rotated=False,
        enabled=True,
        by="u-1",
    )
    assert [type(e) for e in events] == [WebhookSubscriptionChanged]
    after = domain.evolve(disabled, events[0])
    assert (after.status, after.consecutive_failures, after.disabled_reason) == ("active", 0, None)
    assert (
        domain.change(
            active(),
            target=None,
            event_types=None,
            content_mode=None,
            secret_rotated=False,
            enabled=True,
            by="u-1",
        )
        == []
    )


def test_a_signature_verifies_with_the_standard_webhooks_library() -> None:
    secret = signing.new_secret()
    body = b'{"id":"e-1"}'
    now = int(time.time())
    headers = signing.signed_headers(secret, "e-1", now, body)
    Webhook(secret).verify(body, headers)  # raises when it does not verify
    assert signing.verify(secret, headers, body, now)
    assert not signing.verify(secret, headers, body + b" ", now)
    # A request replayed later than the tolerance is refused.
    assert not signing.verify(secret, headers, body, now + signing.TOLERANCE_SECONDS + 1)
    assert not signing.verify(signing.new_secret(), headers, body, now)


def test_a_supplied_secret_must_carry_a_long_enough_key() -> None:
    with pytest.raises(signing.InvalidSecret):
        signing.key_of("whsec_c2hvcnQ=")
    with pytest.raises(signing.InvalidSecret):
        signing.key_of("not-a-secret")


def envelope() -> EventEnvelope:
    return EventEnvelope(
        id="e-1",
        source="/crm/alerts",
        type="crm.alerts.alert_opened.v1",
        subject="c-1",
        time=T0,
        tenantid="acme",
        partitionkey="c-1",
        sequence=3,
        data={"alert_id": "a-1", "customer_id": "c-1", "note": "café"},
        dataschema="https://schemas.crm.example/events/crm.alerts.alert_opened.v1.json",
    )


@pytest.mark.parametrize("mode", ["structured", "binary"])
def test_both_content_modes_read_back_with_the_cloudevents_sdk(mode: str) -> None:
    headers, body = request_of(event_document(envelope()), mode)  # type: ignore[arg-type]
    read = from_http(headers, body)
    assert read["id"] == "e-1"
    assert read["type"] == "crm.alerts.alert_opened.v1"
    assert read["tenantid"] == "acme"
    assert read["partitionkey"] == "c-1"
    assert read.data == {"alert_id": "a-1", "customer_id": "c-1", "note": "café"}
    if mode == "structured":
        assert headers["content-type"] == "application/cloudevents+json"
        assert json.loads(body)["sequence"] == "3"
    else:
        assert headers["ce-id"] == "e-1" and json.loads(body)["alert_id"] == "a-1"


def test_a_person_may_disable_a_subscription_and_a_deleted_one_takes_no_change() -> None:
    [disabled] = domain.change(
        active(),
        target=None,
        event_types=None,
        content_mode=None,
        secret_rotated=False,
        enabled=False,
        by="u-1",
    )
    assert isinstance(disabled, WebhookDisabled) and disabled.by == "u-1"
    assert domain.evolve(active(), disabled).status == "disabled"
    deleted = domain.evolve(active(), domain.unsubscribe(active(), "u-1")[0])
    with pytest.raises(domain.SubscriptionGone):
        domain.change(
            deleted,
            target=None,
            event_types=("*",),
            content_mode=None,
            secret_rotated=False,
            enabled=None,
            by="u-1",
        )
