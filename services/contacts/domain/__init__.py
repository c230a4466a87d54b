"""The Customer aggregate of the contacts service: pure rules, no I/O, no clock.

A customer (a person or a company) is the fold of its stream's events; handlers load
the stream, ``fold`` it, ask ``decide`` for new events and append them at the version
they read. ``now`` is always passed in, so time rules are testable without waiting.
The handlers' API, the error-to-status table and the rules worth knowing are in
docs/decisions/0023-the-customer-aggregate.md.

One module per concept: ``customer`` (the state and its fold), ``decisions`` (``decide``,
with ``registration``, ``profile``, ``relationships``, ``interactions`` and ``consents``
for its groups of commands, ``guards`` for the checks they share), ``merge``,
``custom_fields`` (definitions and attribute validation), ``search_keys`` and
``errors``. Everything the rest of the service uses is re-exported here, so callers
import from ``services.contacts.domain`` and never need to know which file holds it.
"""

from __future__ import annotations

from services.contacts.domain.custom_fields import (
    MAX_NUMBER_DIGITS,
    MAX_TEXT_ATTRIBUTE,
    NO_CUSTOM_FIELDS,
    CustomFieldDefinition,
    decide_custom_field,
    fold_custom_fields,
    validate_attributes,
)
from services.contacts.domain.customer import (
    NO_OTHERS,
    Customer,
    evolve,
    fold,
)
from services.contacts.domain.decisions import (
    decide,
    references,
)
from services.contacts.domain.errors import (
    CannotMergeDifferentKinds,
    CannotMergeIntoItself,
    ContactsError,
    CustomerAlreadyExists,
    CustomerAlreadyMerged,
    CustomerErased,
    CustomerNotFound,
    CustomFieldAlreadyDefined,
    DuplicateCustomer,
    InvalidAttribute,
    InvalidReferrer,
    NotACompany,
    NotAPerson,
    ReferralAlreadyRecorded,
    TimeInTheFuture,
    TooManyTags,
)
from services.contacts.domain.guards import (
    CLOCK_SKEW,
    existing,
)
from services.contacts.domain.merge import decide_merge
from services.contacts.domain.search_keys import search_keys

__all__ = [
    "CLOCK_SKEW",
    "MAX_NUMBER_DIGITS",
    "MAX_TEXT_ATTRIBUTE",
    "NO_CUSTOM_FIELDS",
    "NO_OTHERS",
    "CannotMergeDifferentKinds",
    "CannotMergeIntoItself",
    "ContactsError",
    "CustomFieldAlreadyDefined",
    "CustomFieldDefinition",
    "Customer",
    "CustomerAlreadyExists",
    "CustomerAlreadyMerged",
    "CustomerErased",
    "CustomerNotFound",
    "DuplicateCustomer",
    "InvalidAttribute",
    "InvalidReferrer",
    "NotACompany",
    "NotAPerson",
    "ReferralAlreadyRecorded",
    "TimeInTheFuture",
    "TooManyTags",
    "decide",
    "decide_custom_field",
    "decide_merge",
    "evolve",
    "existing",
    "fold",
    "fold_custom_fields",
    "references",
    "search_keys",
    "validate_attributes",
]
