"""Settings every service shares; each service subclasses and names itself.

    class ContactsSettings(ServiceSettings):
        service_name = "contacts"
        http_port: int = 8101

Everything comes from the environment (``DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS``,
``JWT_SECRET``, ...), so the embedded default and production run the same code.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from libs.auth.tokens import AuthSettings
from libs.events.kafka import KafkaSettings

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
# The embedded default's token key when JWT_SECRET is not set: made once per install,
# random, readable by its owner only (decision 0099).
INSTALL_SECRET = Path("var/jwt-secret")
NO_SECRET = (
    "JWT_SECRET is not set: on PostgreSQL (a deployment, not the embedded default) set "
    "JWT_SECRET (32 or more random bytes), or JWT_PUBLIC_KEY / JWKS_URL"
)


def install_secret(path: Path = INSTALL_SECRET) -> str:
    """This install's token key: read from ``path``, or made there first (by whichever
    process comes first; the others read what it wrote)."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    made = secrets.token_urlsafe(48)
    try:
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(handle, "w") as file:
        file.write(made + "\n")
    return made


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    # Names the default database file and the log lines; set by each subclass.
    service_name: ClassVar[str] = "service"

    # Empty means the embedded default: a SQLite file under var/ named after the service.
    database_url: str = ""
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_enable_idempotence: bool = False
    kafka_partitions: int = 6
    # A group member not heard from for this long loses its partitions. The bundled
    # broker also holds every group join for half of it (a second per 2 s): the tests
    # shorten it, so a consumer starts in one second instead of five.
    kafka_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    kafka_heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    # How long an idle consumer's fetch waits on the broker, and how often an idle relay
    # looks for another process's appends (its own wake it at once): short for a fast
    # read-your-writes; the tests lengthen both, since idle services polling 50 times a
    # second cost the suite about a core (docs/decisions/0104).
    kafka_fetch_max_wait_ms: int = Field(default=20, ge=0)
    outbox_idle_poll_seconds: float = Field(default=0.02, gt=0)
    # Idle for a while (nothing fetched, nothing to publish), both wait longer, up to
    # these: an idle platform idles (decision 0107).
    kafka_idle_fetch_max_wait_ms: int = Field(default=500, ge=0)
    outbox_idle_max_poll_seconds: float = Field(default=0.25, gt=0)

    # Unset: the install's own random key under var/ on the embedded default (SQLite);
    # refused on PostgreSQL, where several machines must share one configured key.
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "crm-platform"
    jwt_audience: str = "crm-api"
    jwt_public_key: str | None = None
    jwks_url: str | None = None
    # Comma-separated (JWT_ALGORITHMS=RS256,ES256); unset picks from the keys given.
    jwt_algorithms: Annotated[tuple[str, ...] | None, NoDecode] = None

    # Where subscribers fetch each event's JSON Schema: events name
    # ``<base>/<type>.json`` as their ``dataschema``. The gateway serves every schema at
    # ``/events/<type>.json``, so point this at the gateway's public URL plus ``/events``
    # (``crm run`` does). Empty: the catalog's own base URL.
    event_schema_base_url: str = ""

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Bigger bodies get 413 before any handler reads them (imports go in pages).
    max_request_body_bytes: int = 10 * 1024 * 1024
    log_level: LogLevel = "INFO"
    # Worker processes of ``crm serve`` (uvicorn's), each with its own event loop.
    workers: int = Field(default=1, ge=1)
    # Admission (decision 0102): requests served at once per process, and how many
    # more may wait for a slot; one past both is refused with 503 and Retry-After.
    max_requests_in_flight: int = Field(default=64, ge=1)
    max_requests_waiting: int = Field(default=128, ge=0)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case_level(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("jwt_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: Any) -> Any:
        if isinstance(value, str):
            names = tuple(name.strip() for name in value.split(",") if name.strip())
            return names or None
        return value

    @field_validator("jwt_public_key", "jwks_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("jwt_public_key")
    @classmethod
    def _unescape_pem(cls, value: str | None) -> str | None:
        # A PEM in an environment variable usually arrives with literal "\n".
        return value.replace("\\n", "\n") if value else value

    @model_validator(mode="after")
    def _default_database(self) -> ServiceSettings:
        if not self.database_url.strip():
            self.database_url = f"sqlite+aiosqlite:///var/{self.service_name}.db"
        return self

    @model_validator(mode="after")
    def _token_key(self) -> ServiceSettings:
        if self.jwt_secret is not None and not self.jwt_secret.get_secret_value().strip():
            self.jwt_secret = None
        if self.jwt_secret is not None or self.jwt_public_key or self.jwks_url:
            return self
        if make_url(self.database_url).get_backend_name() != "sqlite":
            raise ValueError(NO_SECRET)
        self.jwt_secret = SecretStr(install_secret())
        return self

    def event_schema_url(self, type_name: str, catalog_url: str | None) -> str | None:
        """The ``dataschema`` of an event of ``type_name`` (``catalog_url`` when no base
        URL is set)."""
        base = self.event_schema_base_url.strip().rstrip("/")
        return f"{base}/{type_name}.json" if base else catalog_url

    def kafka(self) -> KafkaSettings:
        return KafkaSettings(
            bootstrap_servers=self.kafka_bootstrap_servers,
            enable_idempotence=self.kafka_enable_idempotence,
            partitions=self.kafka_partitions,
            session_timeout_ms=self.kafka_session_timeout_ms,
            heartbeat_interval_ms=self.kafka_heartbeat_interval_ms,
            fetch_max_wait_ms=self.kafka_fetch_max_wait_ms,
            idle_fetch_max_wait_ms=self.kafka_idle_fetch_max_wait_ms,
        )

    def auth(self) -> AuthSettings:
        return AuthSettings(
            issuer=self.jwt_issuer,
            audience=self.jwt_audience,
            algorithms=self.jwt_algorithms,
            secret=self.jwt_secret,
            public_key_pem=self.jwt_public_key,
            jwks_url=self.jwks_url,
        )
