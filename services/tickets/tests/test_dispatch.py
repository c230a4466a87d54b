"""Auto-dispatch: the first matching rule's group, then fewest open tickets or round robin."""

from __future__ import annotations

from datetime import timedelta

from libs.events.catalog.tickets import Category, Channel, DispatchRule, TicketOpened
from services.tickets.domain.dispatch import dispatch, matching_rule
from services.tickets.tests.conftest import Api, MovableClock

COMPLAINTS = DispatchRule(name="complaints", category="complaint", group="care", agents=["a", "b"])
WECHAT = DispatchRule(
    name="wechat", channel="wechat", group="social", agents=["x", "y", "z"], strategy="round_robin"
)
VIP = DispatchRule(name="vip", customer_tag="vip", group="vip-desk")


def opened(category: Category = "question", channel: Channel = "web") -> TicketOpened:
    return TicketOpened(
        ticket_id="t1",
        customer_id="c1",
        subject="s",
        channel=channel,
        category=category,
        priority="normal",
        opened_by="u",
    )


def test_the_first_matching_rule_wins_and_no_rule_means_no_dispatch() -> None:
    rules = [VIP, COMPLAINTS, WECHAT]

    assert matching_rule(rules, opened("complaint", "wechat"), ["vip"]) == VIP
    assert matching_rule(rules, opened("complaint", "wechat"), []) == COMPLAINTS
    assert matching_rule(rules, opened("question", "wechat"), []) == WECHAT
    assert matching_rule(rules, opened("question", "email"), []) is None


def test_fewest_open_tickets_then_the_rule_s_order() -> None:
    assert dispatch(COMPLAINTS, opened(), workload={}, last_assigned=None).assignee_id == "a"
    assert (
        dispatch(COMPLAINTS, opened(), workload={"a": 2, "b": 1}, last_assigned="b").assignee_id
        == "b"
    )


def test_round_robin_goes_on_after_the_last_one_and_wraps() -> None:
    assert dispatch(WECHAT, opened(), workload={}, last_assigned=None).assignee_id == "x"
    assert dispatch(WECHAT, opened(), workload={"y": 9}, last_assigned="x").assignee_id == "y"
    assert dispatch(WECHAT, opened(), workload={}, last_assigned="z").assignee_id == "x"


async def test_new_tickets_are_dispatched_by_the_tenant_s_rules(
    api: Api, clock: MovableClock
) -> None:
    rules = {"rules": [COMPLAINTS.model_dump(), WECHAT.model_dump()]}
    assert (await api.put("/api/v1/dispatch-rules", rules)).status_code == 200
    customer = await api.register()

    async def assignee(**body: str) -> str | None:
        clock.advance(timedelta(seconds=1))
        ticket = await api.open(customer, **body)
        assigned: str | None = ticket["assignee_id"]
        return assigned

    assert [await assignee(channel="wechat") for _ in range(4)] == ["x", "y", "z", "x"]
    assert [await assignee(category="complaint") for _ in range(3)] == ["a", "b", "a"]
    assert await assignee(channel="email") is None
    care = (await api.get("/api/v1/tickets", group="care")).json()["items"]
    assert len(care) == 3
