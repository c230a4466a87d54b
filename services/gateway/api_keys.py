"""API keys for enterprise systems (ERP, finance, marketing automation).

A key is a random 256-bit secret shown once, when it is created; the gateway keeps
only its SHA-256. A fast hash is enough here, unlike for passwords: the secret is
high-entropy, so there is nothing to guess offline, and every request can be
checked with one indexed lookup. Each key acts for one tenant in fixed roles, and
is revoked, never deleted, so the audit trail (who created it, when it was last
used, who revoked it) outlives it.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Index, MetaData, String, Table, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.auth.roles import TENANT_ROLES
from libs.platform.db import JsonDocument, UtcDateTime
from libs.platform.errors import NotFound, Unprocessable

# Recognisable in logs and by secret scanners (like GitHub's "ghp_"), so a leaked
# key is found and revoked quickly.
SECRET_PREFIX = "crm_"
# Shown in lists so an admin can tell keys apart without seeing a secret.
VISIBLE_CHARACTERS = 12

MAX_NAME_LENGTH = 200
# A tenant's roles: a tenant's admin cannot mint a key for the host's operator.
_KNOWN_ROLES = frozenset(role.value for role in TENANT_ROLES)


class ApiKeyNotFound(NotFound):
    """No such key in the caller's tenant (another tenant's key is not found either)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    tenant_id: str
    name: str
    roles: frozenset[str]
    visible_prefix: str
    created_at: datetime
    created_by: str
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def subject(self) -> str:
        """Who the services see as the caller (and record as the actor of its events)."""
        return f"api-key:{self.id}"


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A new key and its secret: the only moment the secret exists in clear."""

    api_key: ApiKey
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def issue_api_key(
    *,
    tenant_id: str,
    name: str,
    roles: Iterable[str],
    created_by: str,
    now: datetime,
    secret: str | None = None,
) -> IssuedApiKey:
    """A new key for ``tenant_id`` in ``roles``; ``secret`` is injectable for tests."""
    name = name.strip()
    if not name:
        raise Unprocessable("name", "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise Unprocessable("name", f"must be at most {MAX_NAME_LENGTH} characters")
    granted = frozenset(roles)
    if not granted:
        raise Unprocessable("roles", "a key needs at least one role")
    unknown = sorted(granted - _KNOWN_ROLES)
    if unknown:
        # Unknown roles would grant nothing: a key that can do nothing is a typo.
        raise Unprocessable("roles", f"unknown roles for a tenant's key: {', '.join(unknown)}")
    secret = secret or SECRET_PREFIX + secrets.token_urlsafe(32)
    api_key = ApiKey(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        name=name,
        roles=granted,
        visible_prefix=secret[:VISIBLE_CHARACTERS],
        created_at=now,
        created_by=created_by,
    )
    return IssuedApiKey(api_key=api_key, secret=secret)


# --- storage ---------------------------------------------------------------------

metadata = MetaData()

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    # No length limits on what comes from a token: a long subject must not be a 500.
    Column("tenant_id", String, nullable=False),
    Column("name", String(MAX_NAME_LENGTH), nullable=False),
    Column("roles", JsonDocument, nullable=False),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("visible_prefix", String(VISIBLE_CHARACTERS), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String, nullable=False),
    Column("last_used_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Column("revoked_by", String),
)

Index("ix_api_keys_tenant", api_keys.c.tenant_id, api_keys.c.created_at)


def _api_key_from(row: RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        roles=frozenset(row["roles"]),
        visible_prefix=row["visible_prefix"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
        revoked_by=row["revoked_by"],
    )


class ApiKeyStore:
    """The gateway's own table of keys; every method but the lookup is per tenant."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, issued: IssuedApiKey) -> ApiKey:
        key = issued.api_key
        async with self.engine.begin() as conn:
            await conn.execute(
                api_keys.insert().values(
                    id=key.id,
                    tenant_id=key.tenant_id,
                    name=key.name,
                    roles=sorted(key.roles),
                    secret_sha256=hash_secret(issued.secret),
                    visible_prefix=key.visible_prefix,
                    created_at=key.created_at,
                    created_by=key.created_by,
                )
            )
        return key

    async def find_by_secret(self, secret: str) -> ApiKey | None:
        """The key this secret belongs to, revoked or not (the caller says which)."""
        query = select(api_keys).where(api_keys.c.secret_sha256 == hash_secret(secret))
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else _api_key_from(row)

    async def get(self, tenant_id: str, key_id: str) -> ApiKey:
        query = select(api_keys).where(api_keys.c.tenant_id == tenant_id, api_keys.c.id == key_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise ApiKeyNotFound(f"API key {key_id} not found")
        return _api_key_from(row)

    async def list_for_tenant(self, tenant_id: str) -> list[ApiKey]:
        """Every key of the tenant, revoked ones included (oldest first, a stable order)."""
        query = (
            select(api_keys)
            .where(api_keys.c.tenant_id == tenant_id)
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_api_key_from(row) for row in rows]

    async def revoke(self, tenant_id: str, key_id: str, *, by: str, now: datetime) -> ApiKey:
        """Revoke a key of ``tenant_id``. Revoking twice keeps the first revocation."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(api_keys)
                .where(
                    api_keys.c.tenant_id == tenant_id,
                    api_keys.c.id == key_id,
                    api_keys.c.revoked_at.is_(None),
                )
                .values(revoked_at=now, revoked_by=by)
            )
        return await self.get(tenant_id, key_id)

    async def record_use(self, key_id: str, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now)
            )
