"""The tenant's people who sign in to the console: invited by an admin, with a password.

A user is named by e-mail (lower-cased), which is also the subject of their tokens,
so what they do is recorded under a name people read. Passwords are hashed with
Argon2id (``argon2-cffi``), never stored or logged; a user who keeps failing to sign
in is locked out for a while. Invitations and password resets are one-time links
whose secret, like an API key's, is kept only as its SHA-256.

The rules (who may be invited, what a password must be, when an account locks) are
pure functions over ``User``; ``UserStore`` keeps the rows.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cache
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Column, Index, Integer, MetaData, String, Table, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.auth.roles import TENANT_ROLES
from libs.platform.db import JsonDocument, UtcDateTime
from libs.platform.errors import Conflict, NotFound, Unprocessable
from services.gateway.api_keys import hash_secret

Status = Literal["invited", "active", "disabled"]
LinkPurpose = Literal["invitation", "reset"]

MAX_NAME_LENGTH = 200
MIN_PASSWORD_LENGTH = 10
# Argon2 hashes whatever it is given; a megabyte "password" would only cost us CPU.
MAX_PASSWORD_LENGTH = 256
_KNOWN_ROLES = frozenset(role.value for role in TENANT_ROLES)
# Argon2id with the library's defaults (RFC 9106's second recommendation: 64 MiB, t=3).
_hasher = PasswordHasher()
_UNUSABLE_LINK = "this link is unknown, used or expired: ask an admin for a new one"


class UserNotFound(NotFound):
    """No such user in the caller's tenant (another tenant's user is not found either)."""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    tenant_id: str
    email: str
    name: str
    roles: frozenset[str]
    status: Status
    created_at: datetime
    created_by: str
    failed_sign_ins: int = 0
    locked_until: datetime | None = None
    last_signed_in_at: datetime | None = None
    password_hash: str | None = None

    @property
    def subject(self) -> str:
        """Who the services see as the caller: the e-mail, as people know them."""
        return self.email

    def locked_at(self, now: datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def with_password(self, password_hash: str) -> User:
        """Its new password; an invited user becomes active with it."""
        status: Status = "active" if self.status == "invited" else self.status
        return replace(self, password_hash=password_hash, status=status)

    def with_status(self, status: Status) -> User:
        return replace(self, status=status)

    def changed(self, *, name: str | None, roles: Iterable[str] | None) -> User:
        return replace(
            self,
            name=name_of(name) if name is not None else self.name,
            roles=roles_of(roles) if roles is not None else self.roles,
        )


@dataclass(frozen=True, slots=True)
class Lockout:
    """After ``max_failures`` wrong passwords in a row, no sign-in for ``duration``."""

    max_failures: int
    duration: timedelta

    def locks(self, failures: int) -> bool:
        return failures >= self.max_failures


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A one-time link's secret: exists in clear only in the answer that hands it over."""

    user: User
    purpose: LinkPurpose
    secret: str
    issued_at: datetime
    expires_at: datetime


def email_of(given: str, field: str = "email") -> str:
    """The address, checked and lower-cased: one spelling per person."""
    try:
        checked = validate_email(given.strip(), check_deliverability=False)
    except EmailNotValidError as invalid:
        raise Unprocessable(field, str(invalid)) from None
    return checked.normalized.lower()


def roles_of(given: Iterable[str]) -> frozenset[str]:
    granted = frozenset(given)
    if not granted:
        raise Unprocessable("roles", "a user needs at least one role")
    unknown = sorted(granted - _KNOWN_ROLES)
    if unknown:
        raise Unprocessable("roles", f"unknown roles for a tenant's user: {', '.join(unknown)}")
    return granted


def name_of(given: str) -> str:
    name = given.strip()
    if not name:
        raise Unprocessable("name", "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise Unprocessable("name", f"must be at most {MAX_NAME_LENGTH} characters")
    return name


def invite(
    *, tenant_id: str, email: str, name: str, roles: Iterable[str], by: str, now: datetime
) -> User:
    """A new user of ``tenant_id``, invited: no password until they set one."""
    return User(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        email=email_of(email),
        name=name_of(name),
        roles=roles_of(roles),
        status="invited",
        created_at=now,
        created_by=by,
    )


def hash_password(user: User, password: str) -> str:
    """The password's Argon2id hash, once it meets the rules (422 naming the rule)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Unprocessable("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Unprocessable("password", f"must be at most {MAX_PASSWORD_LENGTH} characters")
    if password.strip().lower() in {user.email, user.email.split("@")[0]}:
        raise Unprocessable("password", "must not be the e-mail address")
    if len(set(password)) < 4:
        raise Unprocessable("password", "must not be one or a few characters repeated")
    return _hasher.hash(password)


@cache
def _unknown_user_hash() -> str:
    """Verified when the e-mail is unknown, so a wrong address takes as long as a wrong
    password. Made on first use: every process that imports this module (each service's
    ``crm``) would otherwise pay an Argon2 hash at start."""
    return _hasher.hash(secrets.token_urlsafe(16))


def password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s; as slow for an unknown user as for a known one."""
    stored = user.password_hash if user is not None else None
    try:
        return _hasher.verify(stored or _unknown_user_hash(), password[:MAX_PASSWORD_LENGTH]) and (
            stored is not None
        )
    except (VerificationError, InvalidHashError):
        return False


def link_for(user: User, now: datetime, *, invitation: timedelta, reset: timedelta) -> IssuedLink:
    """A one-time link to set a password: an invited user's invitation (again, valid for
    ``invitation``), anyone else's reset (valid for ``reset``)."""
    purpose: LinkPurpose = "invitation" if user.status == "invited" else "reset"
    valid_for = invitation if purpose == "invitation" else reset
    return IssuedLink(user, purpose, secrets.token_urlsafe(32), now, now + valid_for)


# --- storage ---------------------------------------------------------------------

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("tenant_id", String, nullable=False),
    Column("email", String(320), nullable=False),
    Column("name", String(MAX_NAME_LENGTH), nullable=False),
    Column("roles", JsonDocument, nullable=False),
    Column("status", String(16), nullable=False),
    Column("password_hash", String(200)),
    Column("failed_sign_ins", Integer, nullable=False, default=0),
    Column("locked_until", UtcDateTime),
    Column("last_signed_in_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String, nullable=False),
)
Index("ux_users_tenant_email", users.c.tenant_id, users.c.email, unique=True)

user_links = Table(
    "user_links",
    metadata,
    Column("secret_sha256", String(64), primary_key=True),
    Column("user_id", String(36), nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime),
)
Index("ix_user_links_user", user_links.c.user_id)


def _user_from(row: RowMapping) -> User:
    return User(
        id=row["id"],
        tenant_id=row["tenant_id"],
        email=row["email"],
        name=row["name"],
        roles=frozenset(row["roles"]),
        status=row["status"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        failed_sign_ins=row["failed_sign_ins"],
        locked_until=row["locked_until"],
        last_signed_in_at=row["last_signed_in_at"],
        password_hash=row["password_hash"],
    )


class UserStore:
    """The gateway's table of users; every method is per tenant but the link lookup."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, user: User) -> User:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(
                    users.insert().values(
                        id=user.id,
                        tenant_id=user.tenant_id,
                        email=user.email,
                        name=user.name,
                        roles=sorted(user.roles),
                        status=user.status,
                        failed_sign_ins=0,
                        created_at=user.created_at,
                        created_by=user.created_by,
                    )
                )
        except IntegrityError:
            raise Conflict(f"{user.email} is already a user of this tenant") from None
        return user

    async def get(self, tenant_id: str, user_id: str) -> User:
        query = select(users).where(users.c.tenant_id == tenant_id, users.c.id == user_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        if row is None:
            raise UserNotFound(f"user {user_id} not found")
        return _user_from(row)

    async def find(self, tenant_id: str, email: str) -> User | None:
        query = select(users).where(users.c.tenant_id == tenant_id, users.c.email == email)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else _user_from(row)

    async def list_for_tenant(self, tenant_id: str) -> list[User]:
        query = select(users).where(users.c.tenant_id == tenant_id).order_by(users.c.email)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_user_from(row) for row in rows]

    async def save(self, user: User) -> User:
        """Write what an admin or the user changes (never its tenant, id or e-mail, nor the
        sign-in counters, which only ``record_failure`` and ``record_sign_in`` write)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(users)
                .where(users.c.tenant_id == user.tenant_id, users.c.id == user.id)
                .values(
                    name=user.name,
                    roles=sorted(user.roles),
                    status=user.status,
                    password_hash=user.password_hash,
                )
            )
        return user

    async def record_failure(self, user: User, now: datetime, lockout: Lockout) -> bool:
        """One more wrong password for ``user``; whether it now locks the account. Counted
        in the database, so guesses sent in parallel are each counted."""
        where = (users.c.tenant_id == user.tenant_id, users.c.id == user.id)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(users).where(*where).values(failed_sign_ins=users.c.failed_sign_ins + 1)
            )
            failures = (await conn.execute(select(users.c.failed_sign_ins).where(*where))).scalar()
            if failures is None or not lockout.locks(failures):
                return False
            await conn.execute(
                update(users)
                .where(*where)
                .values(failed_sign_ins=0, locked_until=now + lockout.duration)
            )
        return True

    async def record_sign_in(self, user: User, now: datetime) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(users)
                .where(users.c.tenant_id == user.tenant_id, users.c.id == user.id)
                .values(failed_sign_ins=0, locked_until=None, last_signed_in_at=now)
            )

    async def add_link(self, link: IssuedLink) -> None:
        """Keep a new link; the user's earlier unused links of any purpose stop working
        (marked used when the new one was issued)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                update(user_links)
                .where(user_links.c.user_id == link.user.id, user_links.c.used_at.is_(None))
                .values(used_at=link.issued_at)
            )
            await conn.execute(
                user_links.insert().values(
                    secret_sha256=hash_secret(link.secret),
                    user_id=link.user.id,
                    purpose=link.purpose,
                    expires_at=link.expires_at,
                )
            )

    async def link_holder(self, secret: str, now: datetime) -> User:
        """The user an unused, unexpired link is for (422 when it cannot be used)."""
        async with self.engine.connect() as conn:
            found = await self._usable_link(conn, secret, now)
            row = (
                (await conn.execute(select(users).where(users.c.id == found["user_id"])))
                .mappings()
                .first()
            )
        if row is None:
            raise Unprocessable("token", _UNUSABLE_LINK)
        return _user_from(row)

    async def use_link(self, secret: str, now: datetime) -> None:
        """Mark a link used: once, even when two requests bring it at the same moment."""
        async with self.engine.begin() as conn:
            found = await self._usable_link(conn, secret, now)
            taken = await conn.execute(
                update(user_links)
                .where(
                    user_links.c.secret_sha256 == found["secret_sha256"],
                    user_links.c.used_at.is_(None),
                )
                .values(used_at=now)
            )
            if taken.rowcount != 1:
                raise Unprocessable("token", _UNUSABLE_LINK)

    @staticmethod
    async def _usable_link(conn: AsyncConnection, secret: str, now: datetime) -> RowMapping:
        query = select(user_links).where(user_links.c.secret_sha256 == hash_secret(secret))
        found = (await conn.execute(query)).mappings().first()
        if found is None or found["used_at"] is not None or found["expires_at"] <= now:
            raise Unprocessable("token", _UNUSABLE_LINK)
        return found
