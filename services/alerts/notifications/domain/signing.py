"""Signatures receivers can check: the Standard Webhooks scheme (HMAC-SHA256).

Three headers go with every webhook delivery::

    webhook-id: <the CloudEvent's id, the same on every retry>
    webhook-timestamp: <seconds since the epoch when this attempt was sent>
    webhook-signature: v1,<base64 of HMAC-SHA256(key, "<id>.<timestamp>.<body>")>

The key is the base64 after ``whsec_`` in the subscription's secret. A receiver
recomputes the HMAC over the raw body, compares in constant time, refuses a
timestamp more than five minutes from its clock (a replayed request) and keeps the
ids it has processed (a retry repeats the id). See docs/webhooks.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

PREFIX = "whsec_"
KEY_BYTES = 32
TOLERANCE_SECONDS = 300


class InvalidSecret(ValueError):
    pass


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_of(secret: str) -> bytes:
    """The HMAC key in a ``whsec_<base64>`` secret (24 to 64 bytes)."""
    if not secret.startswith(PREFIX):
        raise InvalidSecret(f"starts with {PREFIX}")
    try:
        key = base64.b64decode(secret.removeprefix(PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret(f"{PREFIX} followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise InvalidSecret("a key of 24 to 64 bytes (32 recommended)")
    return key


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(key_of(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }


def verify(secret: str, headers: dict[str, str], body: bytes, now: int) -> bool:
    """What a receiver does (and what the tests do beside the reference library)."""
    try:
        message_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        sent = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        return False
    expected = signature(secret, message_id, timestamp, body)
    # Several signatures may be sent while a secret is being rotated.
    return any(hmac.compare_digest(expected, s) for s in sent)
