"""The event catalog: the published language of the platform.

One module per publishing service (``catalog.contacts``, ...) declares its
event models; consumers import them from here, never from the service.

Every event type is a pydantic model with a versioned type name such as
``crm.contacts.customer_registered.v1``. The catalog turns stored or received
payloads back into those models, upcasting old versions on the way, and exports
a JSON Schema per type for subscribers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

TYPE_NAME = re.compile(r"^crm\.[a-z0-9_]+\.[a-z0-9_]+\.v[1-9][0-9]*$")

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
E = TypeVar("E", bound="DomainEvent")


class DomainEvent(BaseModel):
    """A fact that happened in the CRM; past tense, immutable.

    Subclasses name their type when they are declared::

        class CustomerRegistered(DomainEvent, type_name="crm.contacts.customer_registered.v1"):
            name: str
    """

    # Consumers must tolerate fields they do not know (a newer producer may add some).
    model_config = ConfigDict(frozen=True, extra="ignore")

    type_name: ClassVar[str] = ""
    # True for an event that makes every reader forget a person: storage then
    # also drops the old copies it keeps of pages (libs/platform/db.py).
    erases_personal_data: ClassVar[bool] = False

    def __init_subclass__(cls, type_name: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if type_name:
            if not TYPE_NAME.match(type_name):
                raise ValueError(
                    f"event type {type_name!r} must look like crm.<service>.<name>.v<N>"
                )
            cls.type_name = type_name


class UnknownEventType(LookupError):
    """A payload whose type this catalog does not know (reported, never fatal)."""

    def __init__(self, type_name: str) -> None:
        super().__init__(f"unknown event type {type_name!r}")
        self.type_name = type_name


class UndecodableEvent(ValueError):
    """A payload of a known type that does not match its schema."""

    def __init__(self, type_name: str, reason: str) -> None:
        super().__init__(f"cannot decode {type_name!r}: {reason}")
        self.type_name = type_name
        self.reason = reason


class EventCatalog:
    """Maps type names to models, and old type names to upcasters."""

    def __init__(
        self, events: Iterable[type[DomainEvent]] = (), *, schema_base_url: str = ""
    ) -> None:
        self._models: dict[str, type[DomainEvent]] = {}
        self._upcasters: dict[str, tuple[str, Upcaster]] = {}
        self.schema_base_url = schema_base_url.rstrip("/")
        for event in events:
            self.register(event)

    def register(self, model: type[E]) -> type[E]:
        if not model.type_name:
            raise ValueError(f"{model.__name__} has no type_name")
        existing = self._models.get(model.type_name)
        if existing is not None and existing is not model:
            raise ValueError(f"{model.type_name} is already registered to {existing.__name__}")
        self._models[model.type_name] = model
        return model

    def upcaster(self, old_type: str, new_type: str) -> Callable[[Upcaster], Upcaster]:
        """Declare how a payload of ``old_type`` becomes one of ``new_type``."""

        def register(fn: Upcaster) -> Upcaster:
            self._upcasters[old_type] = (new_type, fn)
            return fn

        return register

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._models or type_name in self._upcasters

    @property
    def types(self) -> list[str]:
        return sorted(self._models)

    def model_for(self, type_name: str) -> type[DomainEvent]:
        try:
            return self._models[type_name]
        except KeyError:
            raise UnknownEventType(type_name) from None

    def upcast(self, type_name: str, data: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Follow the upcaster chain from ``type_name`` to the newest known version."""
        current, payload = type_name, dict(data)
        seen = {current}
        while current in self._upcasters:
            current, fn = self._upcasters[current]
            if current in seen:
                raise ValueError(f"upcaster cycle at {current}")
            seen.add(current)
            payload = fn(payload)
        return current, payload

    def decode(self, type_name: str, data: Mapping[str, Any]) -> DomainEvent:
        current, payload = self.upcast(type_name, data)
        model = self.model_for(current)
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise UndecodableEvent(type_name, _first_error(exc)) from exc

    def encode(self, event: DomainEvent) -> tuple[str, dict[str, Any]]:
        if type(event).type_name not in self._models:
            raise UnknownEventType(type(event).type_name)
        return type(event).type_name, event.model_dump(mode="json")

    def schema_url(self, type_name: str) -> str | None:
        if not self.schema_base_url:
            return None
        return f"{self.schema_base_url}/{type_name}.json"

    def json_schema(self, type_name: str) -> dict[str, Any]:
        schema = self.model_for(type_name).model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = self.schema_url(type_name) or type_name
        schema["title"] = type_name
        return schema

    def json_schemas(self) -> dict[str, dict[str, Any]]:
        return {name: self.json_schema(name) for name in self.types}

    def export_schemas(self, directory: Path) -> list[Path]:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, schema in self.json_schemas().items():
            path = directory / f"{name}.json"
            path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            written.append(path)
        return written


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err.get("loc", ())) or "payload"
    return f"{where}: {err.get('msg', 'invalid')}"


def published_catalogs() -> dict[str, Any]:
    """Every published catalog, by service (libs/events/catalog/<service>.py)."""
    import importlib
    import pkgutil

    found = {}
    for module in pkgutil.iter_modules(__path__):
        loaded = importlib.import_module(f"libs.events.catalog.{module.name}")
        if hasattr(loaded, "catalog"):
            found[module.name] = loaded.catalog
    return found
