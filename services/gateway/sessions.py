"""Console sessions: a long-lived secret in an HttpOnly cookie, short-lived tokens from it.

Signing in (with a password or through the company's identity provider) opens a
session: a random secret the browser keeps in a ``HttpOnly``, ``SameSite=Strict``
cookie scoped to ``/auth`` (no script can read it, no other site can send it), of
which the gateway keeps only the SHA-256. The console trades it at ``/auth/refresh``
for a bearer token of a few minutes, kept in memory, so the services see the same
JWT as from any other caller. A session ends when its user signs out, after
``idle`` without a refresh or ``lifetime`` in all, and at once when an admin
disables the user or resets their password.

A password user's roles are read again at every refresh, so a change reaches the
console within one token's lifetime; a single-sign-on session keeps the roles the
identity provider gave when it was opened.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Column, Index, MetaData, String, Table, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.platform.db import JsonDocument, UtcDateTime
from services.gateway.api_keys import hash_secret

COOKIE = "crm_session"
COOKIE_PATH = "/auth"
Via = Literal["password", "oidc"]


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    tenant_id: str
    subject: str
    roles: frozenset[str]
    via: Via
    # The password user it belongs to (None for single sign-on).
    user_id: str | None
    created_at: datetime
    refreshed_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: timedelta
    lifetime: timedelta

    def alive(self, session: Session, now: datetime) -> bool:
        return now < session.expires_at and now < session.refreshed_at + self.idle


metadata = MetaData()

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("secret_sha256", String(64), nullable=False, unique=True),
    Column("tenant_id", String, nullable=False),
    Column("subject", String, nullable=False),
    Column("roles", JsonDocument, nullable=False),
    Column("via", String(16), nullable=False),
    Column("user_id", String(36)),
    Column("created_at", UtcDateTime, nullable=False),
    Column("refreshed_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("ended_at", UtcDateTime),
)
Index("ix_sessions_user", sessions.c.user_id)


def _session_from(row: RowMapping) -> Session:
    return Session(
        id=row["id"],
        tenant_id=row["tenant_id"],
        subject=row["subject"],
        roles=frozenset(row["roles"]),
        via=row["via"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        refreshed_at=row["refreshed_at"],
        expires_at=row["expires_at"],
    )


class SessionStore:
    def __init__(self, engine: AsyncEngine, policy: SessionPolicy) -> None:
        self.engine = engine
        self.policy = policy

    async def open(
        self,
        *,
        tenant_id: str,
        subject: str,
        roles: frozenset[str],
        via: Via,
        user_id: str | None,
        now: datetime,
    ) -> tuple[Session, str]:
        """A new session and its secret (for the cookie; kept here only hashed)."""
        secret = secrets.token_urlsafe(32)
        session = Session(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            subject=subject,
            roles=roles,
            via=via,
            user_id=user_id,
            created_at=now,
            refreshed_at=now,
            expires_at=now + self.policy.lifetime,
        )
        async with self.engine.begin() as conn:
            await conn.execute(
                sessions.insert().values(
                    id=session.id,
                    secret_sha256=hash_secret(secret),
                    tenant_id=tenant_id,
                    subject=subject,
                    roles=sorted(roles),
                    via=via,
                    user_id=user_id,
                    created_at=now,
                    refreshed_at=now,
                    expires_at=session.expires_at,
                )
            )
        return session, secret

    async def refresh(self, secret: str, now: datetime) -> Session | None:
        """The live session this secret opens, its idle clock restarted; None otherwise."""
        query = select(sessions).where(
            sessions.c.secret_sha256 == hash_secret(secret), sessions.c.ended_at.is_(None)
        )
        async with self.engine.begin() as conn:
            row = (await conn.execute(query)).mappings().first()
            if row is None:
                return None
            session = _session_from(row)
            if not self.policy.alive(session, now):
                return None
            await conn.execute(
                update(sessions).where(sessions.c.id == session.id).values(refreshed_at=now)
            )
        return session

    async def end(self, secret: str, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(sessions)
                .where(
                    sessions.c.secret_sha256 == hash_secret(secret), sessions.c.ended_at.is_(None)
                )
                .values(ended_at=now)
            )

    async def end_all_of(self, user_id: str, now: datetime) -> None:
        """End every session of a password user (disabled, or its password reset)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(sessions)
                .where(sessions.c.user_id == user_id, sessions.c.ended_at.is_(None))
                .values(ended_at=now)
            )
