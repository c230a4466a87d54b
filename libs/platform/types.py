"""Field types every service validates the same way.

``Instant``: a moment with its UTC offset, inside the platform's one accepted range of
instants, 1900-01-01 to 2999-12-31 in UTC (decision 0096). Every instant a caller or
another system gives (HTTP bodies and queries, CSV rows, the given times on events
from outside) is checked against it once, at the edge, and a 422 names the field.
Inside the range every consumer's arithmetic (a window back, an expiry ahead, a
month's bucket) stays within what Python's datetimes and the databases hold (years 1
to 9999): what the write side accepts, every projector can apply.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
OUT_OF_RANGE = "is out of range: it must fall within 1900-01-01 and 2999-12-31 in UTC"
DAY_OUT_OF_RANGE = "is out of range: it must fall within 1900-01-01 and 2999-12-31"


def in_utc(value: datetime) -> datetime:
    """``value`` in UTC; ValueError (what pydantic reports as a field error) when it
    falls outside the platform's accepted range."""
    try:
        moment = value.astimezone(UTC)
    except OverflowError:
        raise ValueError(OUT_OF_RANGE) from None
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(OUT_OF_RANGE)
    return moment


def representable(value: datetime) -> datetime:
    """``value`` once known to be a moment UTC can hold at all (a position the platform
    wrote itself, such as a cursor, may hold a sentinel beyond the accepted range)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise ValueError(OUT_OF_RANGE) from None
    return value


def accepted(value: datetime) -> datetime:
    """``value`` as given (its offset kept), once known to be in the accepted range."""
    in_utc(value)
    return value


# A moment as the caller gave it (its offset kept), inside the accepted range.
Instant = Annotated[AwareDatetime, AfterValidator(accepted)]
# The same moment converted to UTC: for comparisons and queries.
UtcInstant = Annotated[AwareDatetime, AfterValidator(in_utc)]


def accepted_day(value: date) -> date:
    """A calendar day (a contract's end, a quote's validity) inside the same range."""
    if not EARLIEST.date() <= value <= LATEST.date():
        raise ValueError(DAY_OUT_OF_RANGE)
    return value


Day = Annotated[date, AfterValidator(accepted_day)]


# Who a person is: a token's subject (an e-mail address for most identity providers,
# ``admin@demo`` for ``crm token``) or an opaque id; as an owner or an assignee it is
# kept in 64 characters.
PERSON_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}$"
