"""Personal data in an immutable history: crypto-shredding.

Events are never rewritten, yet a customer may ask to be forgotten. So the
fields a service declares personal are stored encrypted with a key per
(tenant, customer); erasure destroys the key. From then on every read of the
history (the service's own, a republished topic, an export) sees the declared
redacted value instead, and nothing can bring the data back.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, LargeBinary, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from libs.platform.db import UtcDateTime

SEALED_PREFIX = "sealed:v1:"


@dataclass(frozen=True)
class PersonalDataPolicy:
    """Which fields of which event types are personal, and what an erased one reads as.

    ``fields[type_name][field] = redacted value`` (for example ``""`` for a required
    name, ``None`` for an optional email). The subject is the event's partition key.
    """

    fields: Mapping[str, Mapping[str, Any]]

    def personal_fields(self, type_name: str) -> Mapping[str, Any]:
        return self.fields.get(type_name, {})


def keys_table(metadata: Any) -> Table:
    return Table(
        "personal_data_keys",
        metadata,
        Column("tenant_id", String(64), primary_key=True),
        Column("subject_id", String(64), primary_key=True),
        Column("key", LargeBinary),  # NULL once erased: the data is gone for good
        Column("created_at", UtcDateTime, nullable=False),
        Column("erased_at", UtcDateTime),
    )


Subject = tuple[str, str]  # (tenant id, subject id)


class PersonalDataVault:
    def __init__(self, table: Table, policy: PersonalDataPolicy) -> None:
        self.table = table
        self.policy = policy

    def is_personal(self, type_name: str) -> bool:
        return bool(self.policy.personal_fields(type_name))

    async def seal_many(
        self, conn: AsyncConnection, tenant_id: str, items: list[tuple[str, str, dict[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Seal the personal fields of (subject id, type name, data) items: one key
        lookup and one insert of the keys not made yet, whatever the number of items.
        An erased subject's fields are written redacted: nothing personal comes back."""
        subjects = {subject for subject, type_name, data in items if self._present(type_name, data)}
        keys = await self.keys(conn, [(tenant_id, s) for s in subjects])
        new_keys = {
            (tenant_id, s): AESGCM.generate_key(bit_length=256)
            for s in sorted(subjects)
            if (tenant_id, s) not in keys
        }
        if new_keys:
            now = datetime.now(UTC)
            await conn.execute(
                self.table.insert(),
                [
                    {"tenant_id": t, "subject_id": s, "key": k, "created_at": now}
                    for (t, s), k in new_keys.items()
                ],
            )
            keys.update(new_keys)
        # Every subject with a personal field present is in ``keys`` (None: erased).
        return [
            self._seal(type_name, data, keys.get((tenant_id, subject)))
            for subject, type_name, data in items
        ]

    def seal_new_subject(
        self, items: list[tuple[str, dict[str, Any]]]
    ) -> tuple[bytes | None, list[dict[str, Any]]]:
        """Seal (type name, data) items of a subject that has no key yet: a new key
        (None when nothing personal is present) and the sealed data. The caller stores
        the key with the data, in the same transaction."""
        personal = any(self._present(type_name, data) for type_name, data in items)
        key = AESGCM.generate_key(bit_length=256) if personal else None
        return key, [self._seal(type_name, data, key) for type_name, data in items]

    def _present(self, type_name: str, data: dict[str, Any]) -> list[str]:
        return [f for f in self.policy.personal_fields(type_name) if data.get(f) is not None]

    def _seal(self, type_name: str, data: dict[str, Any], key: bytes | None) -> dict[str, Any]:
        present = self._present(type_name, data)
        if not present:
            return data
        return _sealed(self.policy.personal_fields(type_name), present, data, key)

    async def keys(
        self, conn: AsyncConnection, subjects: Iterable[Subject]
    ) -> dict[Subject, bytes | None]:
        by_tenant: dict[str, list[str]] = {}
        for tenant_id, subject_id in sorted(set(subjects)):
            by_tenant.setdefault(tenant_id, []).append(subject_id)
        found: dict[Subject, bytes | None] = {}
        for tenant_id, subject_ids in by_tenant.items():
            # Per tenant with a plain IN: PostgreSQL plans a row-value IN list as a
            # full scan, which grows with every customer ever keyed.
            for start in range(0, len(subject_ids), 1000):
                rows = await conn.execute(
                    select(self.table.c.subject_id, self.table.c.key).where(
                        self.table.c.tenant_id == tenant_id,
                        self.table.c.subject_id.in_(subject_ids[start : start + 1000]),
                    )
                )
                found.update({(tenant_id, s): k for s, k in rows})
        return found

    def open(self, type_name: str, data: dict[str, Any], key: bytes | None) -> dict[str, Any]:
        personal = self.policy.personal_fields(type_name)
        if not personal:
            return data
        opened = dict(data)
        for name, redacted in personal.items():
            value = data.get(name)
            if isinstance(value, str) and value.startswith(SEALED_PREFIX):
                opened[name] = _decrypt(key, value) if key is not None else redacted
        return opened

    async def erase(self, conn: AsyncConnection, tenant_id: str, subject_id: str) -> None:
        now = datetime.now(UTC)
        changed = await conn.execute(
            update(self.table)
            .where(self.table.c.tenant_id == tenant_id, self.table.c.subject_id == subject_id)
            .values(key=None, erased_at=now)
        )
        if changed.rowcount == 0:
            await conn.execute(
                self.table.insert().values(
                    tenant_id=tenant_id,
                    subject_id=subject_id,
                    key=None,
                    created_at=now,
                    erased_at=now,
                )
            )


def _sealed(
    personal: Mapping[str, Any], present: list[str], data: dict[str, Any], key: bytes | None
) -> dict[str, Any]:
    sealed = dict(data)
    for name in present:
        if key is None:  # erased subject: nothing personal may be written again
            sealed[name] = personal[name]
        else:
            sealed[name] = _encrypt(key, data[name])
    return sealed


def open_events(
    vault: PersonalDataVault | None, recorded: list[Any], keys: Mapping[Subject, bytes | None]
) -> list[Any]:
    """Decrypt the personal fields of recorded events (dataclasses with ``data``)."""
    if vault is None:
        return recorded
    return [
        replace(e, data=vault.open(e.type, e.data, keys.get((e.tenant_id, e.partition_key))))
        if vault.is_personal(e.type)
        else e
        for e in recorded
    ]


def _encrypt(key: bytes, value: Any) -> str:
    nonce = os.urandom(12)
    plain = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return (
        SEALED_PREFIX + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plain, None)).decode()
    )


def _decrypt(key: bytes, token: str) -> Any:
    raw = base64.b64decode(token[len(SEALED_PREFIX) :])
    return json.loads(AESGCM(key).decrypt(raw[:12], raw[12:], None))
