"""The AsyncAPI 3.0 document subscribers read: topics, message types, headers, key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libs.events.catalog import EventCatalog
from libs.events.kafka import dlq_topic, service_topic

_STRING = {"type": "string"}
_TRACEPARENT = "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"

# CloudEvents binary mode: every attribute is a ce_* header (strings on the wire).
CLOUDEVENT_HEADERS: dict[str, Any] = {
    "type": "object",
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_tenantid"],
    "properties": {
        "content-type": {**_STRING, "const": "application/json"},
        "ce_specversion": {**_STRING, "const": "1.0"},
        "ce_id": {**_STRING, "description": "Event id (UUID); consumers deduplicate on it."},
        "ce_source": {**_STRING, "description": "/crm/<service>"},
        "ce_type": {**_STRING, "description": "crm.<service>.<event>.v<N>"},
        "ce_subject": {**_STRING, "description": "The stream (aggregate) id."},
        "ce_time": {**_STRING, "format": "date-time"},
        "ce_dataschema": {**_STRING, "format": "uri"},
        "ce_tenantid": {**_STRING, "description": "Tenant that owns the event."},
        "ce_sequence": {**_STRING, "description": "Version of the event in its stream (1, 2...)."},
        "ce_correlationid": {**_STRING, "description": "Request that started the work."},
        "ce_causationid": {**_STRING, "description": "Message that directly caused this one."},
        # CloudEvents' distributed tracing extension (decision 0103).
        "ce_traceparent": {
            **_STRING,
            "pattern": _TRACEPARENT,
            "description": "W3C trace context of the request that appended the event: the "
            "customer action's trace. Fixed when stored, the same on every copy (a "
            "republished topic too); absent when the platform does not trace.",
        },
        "ce_tracestate": {
            **_STRING,
            "description": "W3C tracestate that came with ce_traceparent, if any.",
        },
        "traceparent": {
            **_STRING,
            "pattern": _TRACEPARENT,
            "description": "Not a CloudEvents attribute: W3C trace context for Kafka, the "
            "platform's send of this copy (a child of ce_traceparent's span on the first "
            "publication). Continue it to join the action's trace; a replay should start "
            "its own trace and link to ce_traceparent instead.",
        },
    },
}


def _nested(node: Any, key: str) -> Any:
    """A schema moved under ``#/components/schemas/<key>``: its ``#/$defs/...`` references
    must point there, or they dangle from the document's root."""
    if isinstance(node, dict):
        return {
            name: (
                value.replace("#/$defs/", f"#/components/schemas/{key}/$defs/", 1)
                if name == "$ref" and isinstance(value, str)
                else _nested(value, key)
            )
            for name, value in node.items()
        }
    if isinstance(node, list):
        return [_nested(value, key) for value in node]
    return node


_KEY_DESCRIPTION = (
    "partitionkey: the stream's key, so one stream's events stay in order. The customer "
    "id for a customer's events; a stream that is not one customer's names its own "
    "(custom-field definitions use 'custom-fields', one per tenant: read the tenant from "
    "ce_tenantid, never from the key)."
)


def asyncapi_document(catalogs: Mapping[str, EventCatalog]) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for service, catalog in sorted(catalogs.items()):
        refs = {}
        for type_name, schema in catalog.json_schemas().items():
            key = type_name.replace(".", "_")
            schemas[key] = _nested(schema, key)
            messages[key] = {
                "name": type_name,
                "title": type_name,
                "contentType": "application/json",
                "headers": CLOUDEVENT_HEADERS,
                "payload": {"$ref": f"#/components/schemas/{key}"},
                "bindings": {
                    "kafka": {"key": {**_STRING, "description": _KEY_DESCRIPTION}}
                },
            }
            refs[key] = {"$ref": f"#/components/messages/{key}"}
        topic = service_topic(service)
        channels[topic] = {
            "address": topic,
            "description": f"Every event of the {service} service, in stream order per key.",
            "messages": refs,
        }
        channels[dlq_topic(topic)] = {
            "address": dlq_topic(topic),
            "description": "Messages a consumer could not decode or apply; headers dlq_error, "
            "dlq_group, dlq_topic, dlq_partition, dlq_offset say why and where.",
            "messages": {},
        }
        # The document describes the platform: it sends these; subscribers receive them.
        operations[f"send_{service}_events"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{topic}"},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Customer-lifecycle platform events",
            "version": "1.0.0",
            "description": (
                "Domain events as CloudEvents 1.0 in Kafka binary mode: ce_* headers, JSON "
                "value, key = the stream's partition key (the customer id for a customer's "
                "events). Delivery is at least once: deduplicate on ce_id. "
                "Ignore types and fields you do not know. Traced events carry the "
                "action's W3C trace context (ce_traceparent, ce_tracestate: CloudEvents' "
                "distributed tracing extension) and the send's (traceparent)."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The broker of `make run`; set KAFKA_BOOTSTRAP_SERVERS elsewhere.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }
