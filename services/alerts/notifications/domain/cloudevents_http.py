"""A platform event as an HTTP request, per the CloudEvents HTTP protocol binding.

Structured mode (the default): the whole event, attributes and ``data``, is the
JSON body, ``Content-Type: application/cloudevents+json``; the signature covers it
all. Binary mode: the attributes travel as ``ce-*`` headers and the body is the
``data`` alone (``Content-Type: application/json``); the signature covers the body
and the id (``webhook-id``) but not the other headers.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from libs.events.envelope import EventEnvelope
from services.alerts.notifications.domain import ContentMode

STRUCTURED = "application/cloudevents+json"


def event_document(envelope: EventEnvelope) -> dict[str, Any]:
    """The event as a structured CloudEvent (what a delivery stores and resends)."""
    return {
        **envelope.attributes(),
        **envelope.extra,
        "partitionkey": envelope.partitionkey,
        "datacontenttype": envelope.datacontenttype,
        "data": envelope.data,
    }


def request_of(document: dict[str, Any], mode: ContentMode) -> tuple[dict[str, str], bytes]:
    """Headers and body of one delivery of ``document``."""
    if mode == "structured":
        return {"content-type": STRUCTURED}, _json(document)
    headers = {"content-type": str(document.get("datacontenttype", "application/json"))}
    for name, value in document.items():
        if name not in ("data", "datacontenttype"):
            headers[f"ce-{name}"] = _header_value(str(value))
    return headers, _json(document.get("data", {}))


def _header_value(value: str) -> str:
    """Outside printable ASCII, and space, double quote and percent, are percent-encoded
    (the binding's rule for ``ce-*`` header values)."""
    return "".join(
        c if 0x21 <= ord(c) <= 0x7E and c not in '"%' else quote(c, safe="") for c in value
    )


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
