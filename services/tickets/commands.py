"""What a caller may ask of the tickets service, validated and normalised.

Commands about a ticket carry ``ticket_id`` and ``by`` (the acting user); the
handler sets both from the URL and the principal, never from the request body.
Texts are trimmed; a blank optional text counts as absent.
"""

from __future__ import annotations

import re
from datetime import date
from itertools import pairwise
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from libs.events.catalog.tickets import Category, Channel, Priority, SlaTarget, Status, Weekday
from libs.platform.types import Instant

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")


def _no_nul(value: str) -> str:
    # PostgreSQL cannot store NUL in text or JSON: a 422 here, never a 500 there.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NoNul = AfterValidator(_no_nul)
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000), NoNul]
Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300), NoNul]
Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), NoNul]
Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=254), NoNul]


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _blank_is_absent(value: str | None) -> str | None:
    return value or None


class OpenTicket(Command):
    customer_id: Id
    subject: Line
    description: Text = ""
    channel: Channel = "web"
    category: Category = "question"
    priority: Priority = "normal"
    requester_name: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None
    ) = None
    requester_email: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=254)] | None
    ) = None
    requester_phone: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=40)] | None
    ) = None
    # Which SLA policy measures it; the tenant's "default" when not named.
    sla_policy: str = "default"

    _blank = field_validator("requester_name", "requester_email", "requester_phone")(
        _blank_is_absent
    )


class TicketCommand(Command):
    ticket_id: Id
    by: Id


class AssignTicket(TicketCommand):
    assignee_id: Id | None = None
    group: Id | None = None
    rule: Id | None = None


class ReplyToTicket(TicketCommand):
    body: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20_000), NoNul
    ]
    public: bool = True


class ChangeStatus(TicketCommand):
    status: Status


class ReopenTicket(TicketCommand):
    reason: Text = ""


class ChangePriority(TicketCommand):
    priority: Priority
    rule: Id | None = None


class RecordFollowUpVisit(TicketCommand):
    visit_id: Id
    visited_by: Id
    visited_at: Instant
    outcome: Text = ""
    satisfied: bool


class RecordBreach(TicketCommand):
    target: SlaTarget


class TargetsIn(Command):
    first_response_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 365)
    resolution_minutes: int | None = Field(default=None, ge=1, le=60 * 24 * 365)


class DefineSlaPolicy(Command):
    calendar: Id = "standard"
    targets: dict[Priority, TargetsIn]
    # Stricter targets for customers with a tag (a loyalty tier is a tag too).
    by_tag: dict[Id, dict[Priority, TargetsIn]] = Field(default_factory=dict)

    @field_validator("by_tag")
    @classmethod
    def _tags_as_contacts_keeps_them(
        cls, value: dict[str, dict[Priority, TargetsIn]]
    ) -> dict[str, dict[Priority, TargetsIn]]:
        # Contacts keeps tags trimmed and lowercased: match them the same way.
        return {" ".join(tag.split()).lower(): targets for tag, targets in value.items()}


class HoursIn(Command):
    start: Annotated[str, Field(pattern=_CLOCK.pattern)]
    end: Annotated[str, Field(pattern=_CLOCK.pattern)]


class DefineBusinessCalendar(Command):
    time_zone: Id = "Asia/Shanghai"
    week: dict[Weekday, list[HoursIn]]
    holidays: list[date] = Field(default_factory=list)
    make_up_days: list[date] = Field(default_factory=list)
    make_up_hours_of: Weekday = "mon"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long to look up
            raise ValueError("is not an IANA time zone (e.g. Asia/Shanghai)") from None
        return value

    @model_validator(mode="after")
    def _sensible_hours(self) -> DefineBusinessCalendar:
        for day, hours in self.week.items():
            spans = sorted((h.start, h.end) for h in hours)
            for start, end in spans:
                if end <= start:
                    raise ValueError(f"week.{day}: {start}-{end} ends before it starts")
            for (_, end), (start, _) in pairwise(spans):
                if start < end:
                    raise ValueError(f"week.{day}: working hours overlap")
        if not any(self.week.values()):
            raise ValueError("week: at least one day needs working hours")
        return self


def valid_name(value: str) -> bool:
    """Policy and calendar names: lowercase slugs, as they appear in URLs and events."""
    return bool(_NAME.match(value))
