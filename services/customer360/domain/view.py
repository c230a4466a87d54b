"""The customer 360 view and how an event changes it: pure code, no I/O, no clock.

Each publishing service is a :class:`Source` whose appliers map
``(view, event, fact) -> Outcome``; the writer (``read_model/writer.py``) does the
I/O around them. Decision 4 describes the sources, effects and sections.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any, TypeVar

from libs.events.catalog import DomainEvent, EventCatalog
from libs.events.catalog.contacts import AttributeValue

# Bounds: the view answers "what is going on with this customer", not "everything ever".
RECENT_INTERACTIONS = 20
TIMELINE_LENGTH = 100
# A timeline line is a headline; the full event stays in its service's history.
SUMMARY_LENGTH = 300

# The sections other services fill. A list section holds items, ``purchases`` the
# figures per currency, ``service`` the breaches and survey answers, ``loyalty`` one
# account (None: no loyalty account known yet), ``churn_risk`` the level and reasons
# (None: the alerts service has not assessed a change yet). Present and empty until
# their service has said something.
SECTION_NAMES = (
    "deals",
    "orders",
    "purchases",
    "contracts",
    "tasks",
    "tickets",
    "service",
    "loyalty",
    "alerts",
    "churn_risk",
)
# Keys of section items holding free text written about the person (a deal's title, a
# ticket's subject, a survey comment, a ledger adjustment's note): blank once erased.
FREE_TEXT = frozenset({"title", "subject", "comment", "note"})
# Keys of a timeline line's facts that are personal data or free text: the redacted
# facts leave them out. Every field a catalog's PERSONAL_DATA names is here (a test
# checks it); an enum that shares a name (a loyalty earning's ``reason``) goes too,
# which costs an erased customer's timeline nothing it needs.
PERSONAL_FACTS = FREE_TEXT | frozenset(
    {
        "name",
        "email",
        "phone",
        "birthday",
        "attributes",
        "company",
        "summary",
        "body",
        "description",
        "explanation",
        "reason",
        "outcome",
        "requester_name",
        "requester_email",
        "requester_phone",
        "ticket_subject",
        "deal_title",
        "contract_title",
        "task_title",
    }
)
# Envelope-level bookkeeping and long lists a reader of the timeline has no use for.
_NOT_FACTS = frozenset(
    {"customer_id", "tenant_id", "idempotency_key", "draws", "restored", "lots", "source_event_id"}
)
# A line's facts stay a headline's worth: long lists (an order's lines) are cut.
LISTED_FACTS = 10


def empty_service() -> dict[str, Any]:
    return {"breaches": 0, "recent_breaches": [], "last_csat": None, "last_nps": None}


def empty_sections() -> dict[str, Any]:
    return {
        "deals": [],
        "orders": [],
        "purchases": {},
        "contracts": [],
        "tasks": [],
        "tickets": [],
        "service": empty_service(),
        "loyalty": None,
        "alerts": [],
        "churn_risk": None,
    }


@dataclass(frozen=True, slots=True)
class Consent:
    """A customer's current decision about one marketing channel, and its evidence."""

    granted: bool
    source: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Profile:
    # None until the contacts service's registration has been applied.
    kind: str | None = None
    name: str = ""
    email: str | None = None
    phone: str | None = None
    birthday: date | None = None
    company_id: str | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)
    registered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """Where on the broker the last event applied to a view was."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class CustomerView:
    tenant_id: str
    customer_id: str
    profile: Profile = field(default_factory=Profile)
    tags: tuple[str, ...] = ()
    owner_id: str | None = None
    key_contacts: Mapping[str, str] = field(default_factory=dict)
    consents: Mapping[str, Consent] = field(default_factory=dict)
    interaction_count: int = 0
    last_interaction_at: datetime | None = None
    # Most recent first, at most RECENT_INTERACTIONS, this customer's own record only.
    recent_interactions: tuple[Interaction, ...] = ()
    # Set on a duplicate: the customer it now is.
    merged_into: str | None = None
    # Set on a survivor: the duplicates it absorbed.
    absorbed: tuple[str, ...] = ()
    erased_at: datetime | None = None
    sections: Mapping[str, Any] = field(default_factory=empty_sections)
    # The customer's own stream version applied (what the contacts API answered).
    version: int = 0
    # The time of the newest event applied: a fact, so a rebuild gives the same value.
    updated_at: datetime | None = None
    position: Position | None = None

    @property
    def registered(self) -> bool:
        return self.profile.kind is not None

    @property
    def erased(self) -> bool:
        return self.erased_at is not None


@dataclass(frozen=True, slots=True)
class Fact:
    """What the envelope says about an event: the part an applier may use."""

    event_id: str
    type: str
    time: datetime
    # The stream the event belongs to (its ``subject``) and its version there.
    stream_id: str
    sequence: int
    topic: str
    partition: int
    offset: int

    def entry(
        self, summary: str, redacted: str | None = None, *, happened_at: datetime | None = None
    ) -> TimelineEntry:
        """A timeline line; ``redacted`` is the same line without personal data.

        ``happened_at`` is the event's own business time where it carries one (an
        imported registration, a back-dated call): the line is dated and ordered by
        it. Otherwise the fact happened when it was recorded (decision 19).
        """
        return TimelineEntry(
            event_id=self.event_id,
            type=self.type,
            time=self.time if happened_at is None else happened_at,
            sequence=self.sequence,
            summary=_headline(summary),
            redacted_summary=_headline(summary if redacted is None else redacted),
        )


def facts_of(event: DomainEvent, before: CustomerView, after: CustomerView) -> dict[str, Any]:
    """What a timeline line says, for a reader to render in their own language: the
    event's fields as the catalog defines them, and the human names of what it is
    about where the view knows them (an order's number, a ticket's subject, a deal's,
    contract's or task's title), from the view after the event or, for what it
    removed (a closed ticket), before."""
    facts = {
        key: value[:LISTED_FACTS] if isinstance(value, list) else value
        for key, value in event.model_dump(mode="json", exclude=set(_NOT_FACTS)).items()
    }
    for section, key, name, as_fact in _NAMES:
        wanted = facts.get(key)
        if not isinstance(wanted, str):
            continue
        for view in (after, before):
            item = next(
                (i for i in view.sections.get(section) or [] if i.get(key) == wanted), None
            )
            if item is not None and item.get(name):
                facts[as_fact] = item[name]
                break
    return facts


def redacted(facts: Mapping[str, Any]) -> dict[str, Any]:
    """``facts`` without personal data and free text (what an erased customer keeps)."""
    return {key: value for key, value in facts.items() if key not in PERSONAL_FACTS}


# (section, id key, the item's human name, the fact it becomes)
_NAMES = (
    ("orders", "order_id", "external_id", "order_number"),
    ("tickets", "ticket_id", "subject", "ticket_subject"),
    ("deals", "deal_id", "title", "deal_title"),
    ("contracts", "contract_id", "title", "contract_title"),
    ("tasks", "task_id", "title", "task_title"),
)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    event_id: str
    type: str
    # When it happened (the timeline's order), not when it was recorded.
    time: datetime
    sequence: int
    summary: str
    # Kept beside the summary so an erasure is one UPDATE, not a re-read of history.
    redacted_summary: str
    # The same line as data (``facts_of``); ``redacted`` gives what erasure keeps of it.
    facts: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Interaction:
    interaction_id: str
    channel: str
    direction: str
    summary: str
    by: str
    occurred_at: datetime


# --- effects: what an event changes besides the customer's own row -----------------


@dataclass(frozen=True, slots=True)
class Redirect:
    """From now on ``duplicate_id`` is served by ``survivor_id``'s view."""

    duplicate_id: str
    survivor_id: str


@dataclass(frozen=True, slots=True)
class ForgetPersonalData:
    """Drop personal data from the view, the timeline and the interactions of the
    customer and of every duplicate merged into it (their history is shown in its view)."""


Effect = Redirect | ForgetPersonalData


@dataclass(frozen=True, slots=True)
class Outcome:
    view: CustomerView
    # None: the event changes the view but is not worth a timeline line.
    entry: TimelineEntry | None = None
    effects: tuple[Effect, ...] = ()


def forget(view: CustomerView, at: datetime) -> CustomerView:
    """The view without the customer's personal data (what PersonalDataErased asks).

    The free text of interactions goes too, and that of the sections (``FREE_TEXT``:
    titles of deals, contracts and tasks, ticket subjects, survey comments, ledger
    notes): it is written about the person.
    """
    profile = view.profile
    sections = {name: _blanked(value) for name, value in view.sections.items()}
    return replace(
        view,
        profile=Profile(
            kind=profile.kind,
            company_id=profile.company_id,
            registered_at=profile.registered_at,
        ),
        recent_interactions=tuple(replace(i, summary="") for i in view.recent_interactions),
        sections=sections,
        erased_at=view.erased_at or at,
    )


def _blanked(value: Any) -> Any:
    """``value`` (a section, as JSON) with the strings under ``FREE_TEXT`` keys blanked."""
    if isinstance(value, list):
        return [_blanked(item) for item in value]
    if isinstance(value, dict):
        return {
            key: "" if key in FREE_TEXT and isinstance(item, str) else _blanked(item)
            for key, item in value.items()
        }
    return value


def with_interaction(
    recent: tuple[Interaction, ...], interaction: Interaction
) -> tuple[Interaction, ...]:
    """``recent`` plus ``interaction`` (once), most recent first, bounded."""
    kept = [i for i in recent if i.interaction_id != interaction.interaction_id]
    kept.append(interaction)
    kept.sort(key=lambda i: (i.occurred_at, i.interaction_id), reverse=True)
    return tuple(kept[:RECENT_INTERACTIONS])


# --- sources and their appliers --------------------------------------------------------

E = TypeVar("E", bound=DomainEvent)
Applier = Callable[[CustomerView, E, Fact], Outcome]


def _customer_id_field(event: DomainEvent) -> str | None:
    customer_id = getattr(event, "customer_id")  # noqa: B009 - every customer event has it
    return str(customer_id) if customer_id is not None else None


@dataclass(frozen=True, slots=True)
class Registered:
    # None: this event is about no customer (a lead's task): nothing to apply.
    customer_of: Callable[[Any], str | None]
    applier: Callable[[CustomerView, Any, Fact], Outcome]

    def apply(self, view: CustomerView, event: DomainEvent, fact: Fact) -> Outcome:
        """The applier's outcome, its timeline line carrying the event's facts."""
        outcome = self.applier(view, event, fact)
        if outcome.entry is None:
            return outcome
        entry = replace(outcome.entry, facts=facts_of(event, view, outcome.view))
        return replace(outcome, entry=entry)


class Source:
    """One publishing service: its topic, its catalog and what its events do to a view.

    Types without an applier (and types the catalog does not know) change nothing.
    """

    def __init__(
        self, name: str, topic: str, catalog: EventCatalog, *, customer_streams: bool = False
    ) -> None:
        self.name = name
        self.topic = topic
        self.catalog = catalog
        # True when every event is on the stream of the customer it is about (contacts):
        # its sequence is then the customer's version, the one ?min_version waits for.
        # A deal's or a ticket's stream has versions of its own.
        self.customer_streams = customer_streams
        self.appliers: dict[type[DomainEvent], Registered] = {}

    def on(
        self,
        event_type: type[E],
        *,
        customer_of: Callable[[E], str | None] = _customer_id_field,
    ) -> Callable[[Applier[E]], Applier[E]]:
        """Register the applier of ``event_type``; ``customer_of`` names the customer
        it is about (``event.customer_id`` unless said otherwise)."""

        def register(applier: Applier[E]) -> Applier[E]:
            if event_type in self.appliers:
                raise ValueError(f"{event_type.type_name} already has an applier")
            self.appliers[event_type] = Registered(customer_of, applier)
            return applier

        return register

    def applier_for(self, event: DomainEvent) -> Registered | None:
        return self.appliers.get(type(event))


def _headline(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 1] + "…"
