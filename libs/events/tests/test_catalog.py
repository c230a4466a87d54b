"""The event catalog: versioned types, upcasting, schemas, unknown types."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from libs.events.catalog import DomainEvent, EventCatalog, UndecodableEvent, UnknownEventType
from libs.events.tests.sample import VisitLogged, catalog


def test_a_current_payload_decodes_to_its_model() -> None:
    event = catalog.decode("crm.sample.visit_logged.v2", {"customer_id": "c-1", "minutes": 5})

    assert event == VisitLogged(customer_id="c-1", minutes=5)


def test_an_old_version_is_upcast_on_read() -> None:
    event = catalog.decode("crm.sample.visit_logged.v1", {"customer_id": "c-1", "duration": 7})

    assert event == VisitLogged(customer_id="c-1", minutes=7)


def test_fields_a_consumer_does_not_know_are_ignored() -> None:
    event = catalog.decode(
        "crm.sample.visit_logged.v2", {"customer_id": "c-1", "minutes": 5, "mood": "happy"}
    )

    assert event == VisitLogged(customer_id="c-1", minutes=5)


def test_an_unknown_type_is_reported_by_name() -> None:
    with pytest.raises(UnknownEventType) as raised:
        catalog.decode("crm.sample.something_new.v1", {})

    assert raised.value.type_name == "crm.sample.something_new.v1"


def test_a_payload_that_breaks_its_schema_names_the_field() -> None:
    with pytest.raises(UndecodableEvent, match="minutes"):
        catalog.decode("crm.sample.visit_logged.v2", {"customer_id": "c-1", "minutes": "many"})


def test_every_type_exports_a_json_schema_with_its_id() -> None:
    schemas = catalog.json_schemas()

    schema = schemas["crm.sample.visit_logged.v2"]
    assert schema["$id"] == "https://schemas.example/crm/crm.sample.visit_logged.v2.json"
    assert set(schema["required"]) == {"customer_id", "minutes"}
    assert "crm.sample.visit_logged.v1" not in schemas  # old versions live on as upcasters


def test_type_names_must_be_versioned() -> None:
    with pytest.raises(ValueError, match=r"crm\.<service>\.<name>\.v<N>"):

        class Unversioned(DomainEvent, type_name="crm.sample.visit_logged"):
            pass


def test_events_are_immutable() -> None:
    event = VisitLogged(customer_id="c-1", minutes=5)
    with pytest.raises(ValidationError):
        event.minutes = 6


def test_one_type_name_cannot_mean_two_models() -> None:
    class Other(DomainEvent, type_name="crm.sample.visit_logged.v2"):
        pass

    with pytest.raises(ValueError, match="already registered"):
        EventCatalog([VisitLogged, Other])
