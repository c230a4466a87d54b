"""Field types every service validates the same way.

``Instant``: a moment with its UTC offset that can also be told in UTC. Python's
datetimes stop at years 1 and 9999, so ``0001-01-01T00:00:00+14:00`` parses but
falls before year 1 once compared with, converted to or stored as UTC (an
OverflowError, a 500). Checking it once, at the edge, makes it a 422 naming the
field everywhere it is accepted.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime

OUT_OF_RANGE = "is out of range: it must fall within the years 1 to 9999 in UTC"


def in_utc(value: datetime) -> datetime:
    """``value`` in UTC; ValueError (what pydantic reports as a field error) when
    UTC cannot hold it."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(OUT_OF_RANGE) from None


def _representable(value: datetime) -> datetime:
    in_utc(value)
    return value


# A moment as the caller gave it (its offset kept), known to be representable in UTC.
Instant = Annotated[AwareDatetime, AfterValidator(_representable)]
# The same moment converted to UTC: for comparisons and queries.
UtcInstant = Annotated[AwareDatetime, AfterValidator(in_utc)]
