"""The tickets catalog: its personal-data policy names real fields, its topic is published."""

from __future__ import annotations

import json
from pathlib import Path

from libs.events.catalog.tickets import PERSONAL_DATA, TicketOpened, catalog

DOCS = Path(__file__).resolve().parents[3] / "docs" / "events"


def test_every_personal_field_is_a_field_of_its_event_and_redacts_to_a_valid_value() -> None:
    for type_name, fields in PERSONAL_DATA.fields.items():
        model = catalog.model_for(type_name)
        for name, redacted in fields.items():
            assert name in model.model_fields, f"{type_name} has no field {name}"
            annotation = str(model.model_fields[name].annotation)
            assert (redacted is None and "None" in annotation) or isinstance(redacted, str)


def test_a_ticket_opened_round_trips_through_the_catalog() -> None:
    opened = TicketOpened(
        ticket_id="t1",
        customer_id="c1",
        subject="Broken",
        channel="wechat",
        category="complaint",
        priority="high",
        requester_phone="+8613800138000",
        opened_by="u1",
    )
    type_name, data = catalog.encode(opened)

    assert type_name == "crm.tickets.ticket_opened.v1"
    assert catalog.decode(type_name, data) == opened


def test_the_tickets_topic_is_in_the_asyncapi_document() -> None:
    published = json.loads((DOCS / "asyncapi.json").read_text(encoding="utf-8"))

    assert "crm.tickets.events" in published["channels"]
    assert "crm_tickets_sla_breached_v1" in published["components"]["messages"]
