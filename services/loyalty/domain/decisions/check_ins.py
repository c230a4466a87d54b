"""Check-ins: once a day in the tenant's time zone, with points per check-in and
bonuses for streaks of them."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from libs.events.catalog.loyalty import CheckedIn
from services.loyalty.domain.decisions.decision import Decision
from services.loyalty.domain.decisions.earning import earn
from services.loyalty.domain.errors import AlreadyCheckedIn
from services.loyalty.domain.rules import RulesBook


def check_in(d: Decision, rules: RulesBook, now: datetime) -> None:
    current = rules.at(now)
    day = now.astimezone(ZoneInfo(current.time_zone)).date()
    last = d.ledger.last_check_in
    if last is not None and last >= day:
        raise AlreadyCheckedIn(day)
    streak = d.ledger.streak + 1 if last == day - timedelta(days=1) else 1
    d.emit(CheckedIn(customer_id=d.ledger.customer_id, day=day, streak=streak))
    if current.check_in_points:
        earn(
            d,
            f"check-in:{d.ledger.customer_id}:{day}",
            "check_in",
            current.check_in_points,
            rules,
            now,
            key=day.isoformat(),
            explanation=f"check-in, day {streak} in a row",
        )
    for bonus in current.streak_bonuses:
        if streak % bonus.days == 0:
            earn(
                d,
                f"streak:{d.ledger.customer_id}:{day}:{bonus.days}",
                "streak",
                bonus.points,
                rules,
                now,
                key=f"{day}:{bonus.days}",
                explanation=f"{streak} check-ins in a row",
            )
