"""Phone numbers as people write them. The platform stores E.164 (``+8613800138000``);
where a country code ends and how the rest is grouped is in the numbering plans that
``phonenumbers`` carries, so readers get it written out beside the stored form."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers


@lru_cache(maxsize=4096)
def international(e164: str | None) -> str | None:
    """``+14155550100`` -> ``+1 415-555-0100``; the stored form when it does not parse."""
    if not e164:
        return None
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
