"""What a contacts event says of a customer's birthday: one rule for loyalty's bonuses
and alerts' reminders."""

from __future__ import annotations

from datetime import UTC, date, datetime

from libs.events.catalog.contacts import (
    CustomerMerged,
    CustomerMergedInto,
    PersonalDataErased,
    ProfileChanged,
)
from libs.events.catalog.pipeline import OrderCancelled
from libs.platform.birthdays import UNCHANGED, birthday_news

MAY_4 = date(1990, 5, 4)


def test_a_birthday_set_changed_or_absorbed_is_the_news() -> None:
    assert birthday_news(ProfileChanged(customer_id="c-1", birthday=MAY_4)) == MAY_4
    assert birthday_news(CustomerMerged(customer_id="c-1", duplicate_id="c-2", birthday=MAY_4)) == (
        MAY_4
    )


def test_cleared_erased_or_merged_away_forgets_it() -> None:
    assert birthday_news(ProfileChanged(customer_id="c-1", cleared=["birthday"])) is None
    erased = PersonalDataErased(customer_id="c-1", erased_at=datetime.now(UTC), by="u-1")
    assert birthday_news(erased) is None
    assert birthday_news(CustomerMergedInto(customer_id="c-2", survivor_id="c-1")) is None


def test_anything_else_leaves_it_as_it_was() -> None:
    assert birthday_news(ProfileChanged(customer_id="c-1", name="Li Na")) is UNCHANGED
    assert birthday_news(CustomerMerged(customer_id="c-1", duplicate_id="c-2")) is UNCHANGED
    assert birthday_news(OrderCancelled(order_id="o-1", customer_id="c-1")) is UNCHANGED
