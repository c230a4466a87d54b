"""The birthday bonus: from the birthday contacts publishes, once a year, in the
tenant's time zone; erasure forgets the birthday."""

from __future__ import annotations

from datetime import date

from libs.events.catalog.contacts import CustomerRegistered, PersonalDataErased
from services.loyalty.domain.rules import is_birthday
from services.loyalty.handlers.sweeps import award_birthdays
from services.loyalty.tests.conftest import T0, Api, eventually
from testing.consumers import Clock


def test_a_leap_day_birthday_is_kept_on_the_28th_in_other_years() -> None:
    assert is_birthday(2, 29, date(2027, 2, 28))
    assert not is_birthday(2, 29, date(2028, 2, 28))
    assert is_birthday(2, 29, date(2028, 2, 29))


async def test_the_birthday_bonus_comes_once_a_year_and_not_after_erasure(
    api: Api, clock: Clock
) -> None:
    await api.client.put("/api/v1/loyalty/rules", json={"birthday_bonus": 88}, headers=api.auth())
    for customer in ("c-1", "c-2"):
        await api.publish(
            "contacts",
            customer,
            CustomerRegistered(
                customer_id=customer,
                tenant_id="acme",
                kind="person",
                name="x",
                birthday=date(1990, 3, 2),
                registered_at=T0,
            ),
        )
    erased = await api.publish(
        "contacts", "c-2", PersonalDataErased(customer_id="c-2", erased_at=T0, by="admin")
    )
    await eventually(lambda: _consumed(api, len(api.published)))
    assert erased
    assert await award_birthdays(api.app.state.loyalty) == 1
    assert await award_birthdays(api.app.state.loyalty) == 0
    clock.advance(days=365)  # 2 March 2027
    assert await award_birthdays(api.app.state.loyalty) == 1
    lines = await api.ledger("c-1")
    assert [(line["points"], line["source_event_id"]) for line in lines] == [
        (88, "birthday:c-1:2026"),
        (88, "birthday:c-1:2027"),
    ]


async def _consumed(api: Api, count: int) -> bool:
    return await api.consumed() >= count
