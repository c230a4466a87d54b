"""CloudEvents 1.0 envelope and its Kafka binary-mode encoding.

On Kafka every event travels in binary content mode: the attributes are ``ce_*``
headers, ``content-type`` carries ``datacontenttype``, the value is the JSON data
and the key is the ``partitionkey`` extension (the customer id), as the
CloudEvents Kafka protocol binding prescribes. A stock CloudEvents SDK reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SPECVERSION = "1.0"
JSON = "application/json"

# Headers the binding owns; anything else on a message is left alone.
_REQUIRED = ("id", "source", "type", "specversion")


class InvalidEnvelope(ValueError):
    """A message that is not a CloudEvent we can read."""


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class EventEnvelope:
    id: str
    source: str
    type: str
    subject: str
    time: datetime
    tenantid: str
    partitionkey: str
    sequence: int
    data: dict[str, Any]
    correlationid: str | None = None
    causationid: str | None = None
    dataschema: str | None = None
    datacontenttype: str = JSON
    specversion: str = SPECVERSION
    traceparent: str | None = None
    tracestate: str | None = None
    # Headers we received but do not model (kept so a re-publish loses nothing).
    extra: dict[str, str] = field(default_factory=dict)

    def attributes(self) -> dict[str, str]:
        attrs = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": _format_time(self.time),
            "tenantid": self.tenantid,
            "sequence": str(self.sequence),
        }
        if self.dataschema:
            attrs["dataschema"] = self.dataschema
        if self.correlationid:
            attrs["correlationid"] = self.correlationid
        if self.causationid:
            attrs["causationid"] = self.causationid
        if self.traceparent:
            attrs["traceparent"] = self.traceparent
        if self.tracestate:
            attrs["tracestate"] = self.tracestate
        return attrs

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        # Written out rather than built from attributes(): the relay calls this for
        # every event it publishes.
        headers = [
            ("content-type", self.datacontenttype.encode()),
            ("ce_specversion", self.specversion.encode()),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_subject", self.subject.encode()),
            ("ce_time", _format_time(self.time).encode()),
            ("ce_tenantid", self.tenantid.encode()),
            ("ce_sequence", str(self.sequence).encode()),
        ]
        if self.dataschema:
            headers.append(("ce_dataschema", self.dataschema.encode()))
        if self.correlationid:
            headers.append(("ce_correlationid", self.correlationid.encode()))
        if self.causationid:
            headers.append(("ce_causationid", self.causationid.encode()))
        if self.traceparent:
            headers.append(("ce_traceparent", self.traceparent.encode()))
        if self.tracestate:
            headers.append(("ce_tracestate", self.tracestate.encode()))
        for name, value in self.extra.items():
            headers.append((f"ce_{name}", value.encode()))
        return headers

    def to_kafka(self, *, encoded_data: bytes | None = None) -> KafkaRecord:
        """``encoded_data``: the data already as JSON (the store keeps it so), not re-encoded."""
        value = encoded_data
        if value is None:
            value = json.dumps(self.data, separators=(",", ":"), ensure_ascii=False).encode()
        return KafkaRecord(
            key=self.partitionkey.encode(), value=value, headers=self.kafka_headers()
        )

    @classmethod
    def from_kafka(
        cls,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | tuple[Any, ...],
    ) -> EventEnvelope:
        attrs: dict[str, str] = {}
        content_type = JSON
        try:
            for name, raw in headers:
                lowered = name.lower()
                if lowered == "content-type":
                    content_type = raw.decode()
                elif lowered.startswith("ce_"):
                    attrs[lowered[3:]] = raw.decode()
        except UnicodeDecodeError as exc:
            raise InvalidEnvelope(f"header is not UTF-8: {exc}") from exc
        missing = [a for a in _REQUIRED if a not in attrs]
        if missing:
            raise InvalidEnvelope(f"missing CloudEvents attributes: {', '.join(missing)}")
        if attrs["specversion"] != SPECVERSION:
            raise InvalidEnvelope(f"unsupported specversion {attrs['specversion']!r}")
        if not content_type.startswith(JSON):
            raise InvalidEnvelope(f"unsupported content type {content_type!r}")
        try:
            data = json.loads(value) if value else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEnvelope(f"value is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise InvalidEnvelope("value must be a JSON object")
        try:
            sequence = int(attrs.pop("sequence", "0"))
            time = _parse_time(attrs.pop("time")) if "time" in attrs else datetime.now(UTC)
        except ValueError as exc:
            raise InvalidEnvelope(str(exc)) from exc
        known = {
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "tenantid",
            "partitionkey",
            "dataschema",
            "correlationid",
            "causationid",
            "traceparent",
            "tracestate",
        }
        return cls(
            id=attrs["id"],
            source=attrs["source"],
            type=attrs["type"],
            subject=attrs.get("subject", ""),
            time=time,
            tenantid=attrs.get("tenantid", ""),
            partitionkey=key.decode() if key else attrs.get("partitionkey", ""),
            sequence=sequence,
            data=data,
            correlationid=attrs.get("correlationid"),
            causationid=attrs.get("causationid"),
            dataschema=attrs.get("dataschema"),
            datacontenttype=content_type,
            traceparent=attrs.get("traceparent"),
            tracestate=attrs.get("tracestate"),
            extra={k: v for k, v in attrs.items() if k not in known},
        )


def _format_time(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
