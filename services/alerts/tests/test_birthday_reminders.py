"""Birthday reminders on the real broker and PostgreSQL (SQLite: test_sqlite.py): the
owner is reminded once a year some days before, an erased customer's birthday is
forgotten (never reminded, its reminders gone), a merged duplicate's moves over, and the
event names no birthday."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select

from libs.events.catalog.alerts import ReminderDue
from libs.events.catalog.contacts import (
    CustomerMergedInto,
    CustomerRegistered,
    PersonalDataErased,
    ProfileChanged,
)
from services.alerts.handlers import Alerts, sweep
from services.alerts.read_model.reminder_list import birthdays
from services.alerts.tests.conftest import T0, Api
from testing.consumers import Clock


def born(customer_id: str, birthday: date | None) -> CustomerRegistered:
    return CustomerRegistered(
        customer_id=customer_id,
        tenant_id="acme",
        kind="person",
        name=f"Person {customer_id}",
        birthday=birthday,
        owner_id="rep-1",
        registered_at=T0 - timedelta(days=10),
    )


async def reminders_of(api: Api, customer_id: str) -> list[ReminderDue]:
    stream = await api.app.state.alerts.store.read_stream("acme", customer_id)
    return [ReminderDue.model_validate(e.data) for e in stream if e.type == ReminderDue.type_name]


async def kept_birthdays(api: Api) -> dict[str, tuple[int, int]]:
    alerts: Alerts = api.app.state.alerts
    async with alerts.engine.connect() as conn:
        rows = await conn.execute(select(birthdays).where(birthdays.c.tenant_id == "acme"))
        return {r.customer_id: (r.month, r.day) for r in rows}


async def birthdays_remind_once_and_erasure_forgets(api: Api, clock: Clock) -> None:
    alerts: Alerts = api.app.state.alerts
    clock.now = T0 - timedelta(days=10)  # 20 November: every birthday is weeks away
    for customer_id, birthday in (
        ("c-1", date(1990, 12, 5)),
        ("c-2", date(1985, 12, 6)),
        ("c-dup", date(1979, 12, 4)),
        ("c-surv", None),
    ):
        await api.publish("contacts", customer_id, born(customer_id, birthday), at=clock.now)
    await api.caught_up()
    assert await sweep(alerts) == 0
    assert await kept_birthdays(api) == {"c-1": (12, 5), "c-2": (12, 6), "c-dup": (12, 4)}

    erased = PersonalDataErased(customer_id="c-2", erased_at=clock.now, by="dpo")
    await api.publish("contacts", "c-2", erased, at=clock.now)
    merged = CustomerMergedInto(customer_id="c-dup", survivor_id="c-surv")
    await api.publish("contacts", "c-dup", merged, at=clock.now)
    await api.caught_up()
    assert await kept_birthdays(api) == {"c-1": (12, 5), "c-surv": (12, 4)}

    clock.now = T0  # 30 November: 5 and 4 days ahead, inside the default 7
    assert await sweep(alerts) == 2
    assert await sweep(alerts) == 0  # once
    (c1,) = await reminders_of(api, "c-1")
    (survivor,) = await reminders_of(api, "c-surv")
    assert survivor.kind == "birthday"  # the duplicate's birthday, moved over
    assert await reminders_of(api, "c-2") == [] and await reminders_of(api, "c-dup") == []
    # The event says when it fired, not when the birthday is.
    assert (c1.kind, c1.assignee_id, c1.due_on) == ("birthday", "rep-1", date(2026, 11, 30))
    assert "12-05" not in c1.model_dump_json() and "1990" not in c1.model_dump_json()

    # A birthday learnt inside the window is reminded at once, by the projector.
    changed = ProfileChanged(customer_id="c-3", birthday=date(2000, 12, 1))
    await api.publish("contacts", "c-3", born("c-3", None), changed, at=clock.now)
    await api.caught_up()
    assert [r.kind for r in await reminders_of(api, "c-3")] == ["birthday"]

    # Erased after it fired: the birthday and the reminder's entry go.
    erased = PersonalDataErased(customer_id="c-1", erased_at=clock.now, by="dpo")
    await api.publish("contacts", "c-1", erased, at=clock.now)
    await api.caught_up()
    listed = await api.client.get(
        "/api/v1/reminders", params={"assignee": "rep-1"}, headers=api.auth()
    )
    assert listed.status_code == 200, listed.text
    assert sorted(r["customer_id"] for r in listed.json()["items"]) == ["c-3", "c-surv"]
    assert "c-1" not in await kept_birthdays(api)

    clock.now = T0 + timedelta(days=365)  # the next year's: once more, c-1 never again
    await sweep(alerts)  # (also a year without interaction: reminders of their own)
    assert await sweep(alerts) == 0

    async def birthday_reminders(customer_id: str) -> int:
        return [r.kind for r in await reminders_of(api, customer_id)].count("birthday")

    assert await birthday_reminders("c-surv") == 2 and await birthday_reminders("c-3") == 2
    assert await birthday_reminders("c-1") == 1 and await birthday_reminders("c-2") == 0


async def test_birthdays_remind_the_owner_once_a_year_and_erasure_forgets_them(
    api: Api, clock: Clock
) -> None:
    await birthdays_remind_once_and_erasure_forgets(api, clock)
