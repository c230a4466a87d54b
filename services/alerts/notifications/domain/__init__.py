"""Subscriptions and the delivery policy, pure: commands in, events out, no I/O.

A subscription names a target (an ``https`` URL, or ``mailto:`` for e-mail) and the
event types it wants (exact types or wildcards such as ``crm.alerts.*``). Each
delivery is retried with exponential backoff; a subscription whose attempts keep
failing is disabled, and only a person enables it again (docs/decisions/0050).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from email_validator import EmailNotValidError, validate_email

from libs.events.catalog import DomainEvent
from libs.events.catalog.alerts import (
    NotificationSent,
    WebhookDisabled,
    WebhookSubscribed,
    WebhookSubscriptionChanged,
    WebhookUnsubscribed,
)
from services.alerts.notifications.domain.addresses import host_address, internal_name, refusal

Channel = Literal["webhook", "email"]
ContentMode = Literal["structured", "binary"]
Status = Literal["active", "disabled", "deleted"]

# Delivering a delivery's own record would feed itself forever.
NEVER_DELIVERED = frozenset({NotificationSent.type_name})
# ``*``, ``crm.*``, ``crm.alerts.*``, ``crm.alerts.alert_opened.*`` or one exact type.
_PATTERN = re.compile(
    r"^(\*|crm\.\*|crm\.[a-z0-9_]+\.\*|crm\.[a-z0-9_]+\.[a-z0-9_]+\.(\*|v[1-9][0-9]*))$"
)
MAX_EVENT_TYPES = 50


class InvalidSubscription(ValueError):
    """A subscription refused as asked: ``field`` and ``reason`` go to the caller (422)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class SubscriptionGone(LookupError):
    """The subscription was deleted: nothing more can be asked of it (404)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """What the handlers keep of a subscription (its table row)."""

    subscription_id: str
    channel: Channel
    url: str
    event_types: tuple[str, ...]
    content_mode: ContentMode
    status: Status
    consecutive_failures: int
    version: int
    disabled_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Target:
    channel: Channel
    url: str
    # What events and lists may show of it: no query string, no credentials, no address.
    public: str | None


# --- checking what is asked ------------------------------------------------------------


def check_event_types(patterns: Iterable[str], known_types: Collection[str]) -> tuple[str, ...]:
    """Each pattern well formed and matching at least one type the platform publishes
    (a typo would otherwise subscribe to nothing, silently)."""
    wanted = sorted(set(patterns))
    if not wanted:
        raise InvalidSubscription("event_types", "name at least one event type")
    if len(wanted) > MAX_EVENT_TYPES:
        raise InvalidSubscription("event_types", f"at most {MAX_EVENT_TYPES} patterns")
    for pattern in wanted:
        if not _PATTERN.match(pattern):
            raise InvalidSubscription(
                "event_types",
                f"{pattern!r} is neither an event type (crm.<service>.<event>.v<N>) "
                "nor a wildcard (*, crm.<service>.*, crm.<service>.<event>.*)",
            )
        if pattern in NEVER_DELIVERED:
            raise InvalidSubscription("event_types", f"{pattern} is never delivered")
        if not any(matches((pattern,), t) for t in known_types):
            raise InvalidSubscription("event_types", f"{pattern!r} matches no published type")
    return tuple(wanted)


def matches(patterns: Iterable[str], event_type: str) -> bool:
    if event_type in NEVER_DELIVERED:
        return False
    return any(fnmatchcase(event_type, p) for p in patterns)


def check_target(url: str, *, allow_insecure: bool) -> Target:
    """An ``https`` URL on a public host, or ``mailto:`` one address. ``allow_insecure``
    (development, tests) also lets ``http`` and loopback or private addresses through.
    A host name passes: what it resolves to is checked at each delivery."""
    if url.startswith("mailto:"):
        try:
            address = validate_email(url.removeprefix("mailto:"), check_deliverability=False)
        except EmailNotValidError as refused:
            raise InvalidSubscription("url", f"not an e-mail address: {refused}") from None
        return Target("email", f"mailto:{address.normalized}", None)
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is not a number raises here
    except ValueError:
        raise InvalidSubscription("url", "not a URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidSubscription("url", "an absolute https:// URL or mailto:address")
    if parts.scheme == "http" and not allow_insecure:
        raise InvalidSubscription("url", "https only: deliveries carry the tenant's events")
    if parts.fragment:
        raise InvalidSubscription("url", "no #fragment: it never reaches the receiver")
    if not allow_insecure:
        _check_host(parts.hostname)
    host = parts.hostname if port is None else f"{parts.hostname}:{port}"
    public = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return Target("webhook", url, public)


def _check_host(host: str) -> None:
    if internal_name(host):
        raise InvalidSubscription("url", f"{host} names this machine or its network")
    address = host_address(host)
    why = refusal(address) if address is not None else None
    if address is not None and why is not None:
        # Spelt oddly (127.1, 2130706433, 0x7f000001), an address is still that address.
        spelt = "" if str(address) == host else f"{address}, "
        raise InvalidSubscription("url", f"{host} is {spelt}{why}")


# --- decisions -------------------------------------------------------------------------


def subscribe(
    subscription_id: str,
    target: Target,
    event_types: Sequence[str],
    content_mode: ContentMode,
    by: str,
) -> list[DomainEvent]:
    return [
        WebhookSubscribed(
            subscription_id=subscription_id,
            channel=target.channel,
            target=target.public,
            event_types=list(event_types),
            content_mode=content_mode,
            by=by,
        )
    ]


def change(
    state: Subscription,
    *,
    target: Target | None,
    event_types: Sequence[str] | None,
    content_mode: ContentMode | None,
    secret_rotated: bool,
    enabled: bool | None,
    by: str,
) -> list[DomainEvent]:
    """One change event (or none when nothing changes); ``enabled=False`` disables it."""
    if state.status == "deleted":
        raise SubscriptionGone(state.subscription_id)
    if enabled is False:
        changes_too = (
            target is not None or event_types is not None or content_mode or secret_rotated
        )
        events: list[DomainEvent] = []
        if changes_too:
            events += change(
                state,
                target=target,
                event_types=event_types,
                content_mode=content_mode,
                secret_rotated=secret_rotated,
                enabled=None,
                by=by,
            )
        if state.status != "disabled":
            events.append(
                WebhookDisabled(
                    subscription_id=state.subscription_id,
                    consecutive_failures=state.consecutive_failures,
                    reason="disabled by a person",
                    by=by,
                )
            )
        return events
    new_types = tuple(event_types) if event_types is not None else state.event_types
    new_mode = content_mode or state.content_mode
    new_url = target.url if target is not None else state.url
    enabling = enabled is True and state.status == "disabled"
    if (
        new_types == state.event_types
        and new_mode == state.content_mode
        and new_url == state.url
        and not secret_rotated
        and not enabling
    ):
        return []
    channel = target.channel if target is not None else state.channel
    public = target.public if target is not None else public_target(state.url)
    return [
        WebhookSubscriptionChanged(
            subscription_id=state.subscription_id,
            channel=channel,
            target=public,
            event_types=list(new_types),
            content_mode=new_mode,
            secret_rotated=secret_rotated,
            enabled=state.status == "active" or enabling,
            by=by,
        )
    ]


def unsubscribe(state: Subscription, by: str) -> list[DomainEvent]:
    if state.status == "deleted":
        raise SubscriptionGone(state.subscription_id)
    return [WebhookUnsubscribed(subscription_id=state.subscription_id, by=by)]


def public_target(url: str) -> str | None:
    if url.startswith("mailto:"):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None  # never stored: checked when it was set
    host = parts.hostname or ""
    host = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def evolve(state: Subscription, event: DomainEvent, url: str | None = None) -> Subscription:
    """The subscription after ``event`` (``url``: the full target a change set)."""
    if isinstance(event, WebhookSubscriptionChanged):
        return replace(
            state,
            channel=event.channel,
            url=url or state.url,
            event_types=tuple(event.event_types),
            content_mode=event.content_mode,
            status="active" if event.enabled else state.status,
            consecutive_failures=0 if event.enabled else state.consecutive_failures,
            disabled_reason=None if event.enabled else state.disabled_reason,
        )
    if isinstance(event, WebhookDisabled):
        return replace(state, status="disabled", disabled_reason=event.reason)
    if isinstance(event, WebhookUnsubscribed):
        return replace(state, status="deleted")
    return state


# --- the delivery policy ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    first_retry_seconds: float = 5.0
    max_backoff_seconds: float = 3600.0
    # Attempts per delivery before it is given up (kept in the log as failed).
    max_attempts: int = 10
    # Failed attempts in a row (any of the subscription's deliveries) that disable it.
    disable_after: int = 15

    def backoff(self, attempts: int, jitter: float = 0.0) -> timedelta:
        """Wait after the ``attempts``-th failed attempt: doubling from the first retry,
        capped; ``jitter`` in [-1, 1] spreads it by up to a fifth so that receivers
        coming back are not hit by every retry at once."""
        seconds = min(self.max_backoff_seconds, self.first_retry_seconds * 2 ** (attempts - 1))
        return timedelta(seconds=seconds * (1 + 0.2 * max(-1.0, min(1.0, jitter))))


DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """What an attempt's outcome means for the delivery and its subscription."""

    status: DeliveryStatus
    next_attempt_at: datetime | None
    consecutive_failures: int
    disable: WebhookDisabled | None = None


def after_attempt(
    policy: DeliveryPolicy,
    subscription: Subscription,
    attempts: int,
    delivered: bool,
    now: datetime,
    jitter: float = 0.0,
    *,
    final: bool = False,
) -> Verdict:
    """``attempts``: how many attempts this delivery has had, this one included;
    ``final``: it failed in a way no retry mends (a refused address), so it is given up
    at once, and counts towards disabling like any failure."""
    if delivered:
        return Verdict("delivered", None, 0)
    failures = subscription.consecutive_failures + 1
    given_up = final or attempts >= policy.max_attempts
    verdict = Verdict(
        "failed" if given_up else "pending",
        None if given_up else now + policy.backoff(attempts, jitter),
        failures,
    )
    if failures >= policy.disable_after and subscription.status == "active":
        disabled = WebhookDisabled(
            subscription_id=subscription.subscription_id,
            consecutive_failures=failures,
            reason=f"{failures} delivery attempts failed in a row",
        )
        return replace(verdict, disable=disabled)
    return verdict
