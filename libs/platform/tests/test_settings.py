"""ServiceSettings: the environment decides, the service name picks the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from libs.events.kafka import KafkaSettings
from libs.platform.settings import ServiceSettings

ENVIRONMENT = [
    "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_ENABLE_IDEMPOTENCE", "KAFKA_PARTITIONS",
    "KAFKA_SESSION_TIMEOUT_MS", "KAFKA_HEARTBEAT_INTERVAL_MS", "KAFKA_FETCH_MAX_WAIT_MS",
    "OUTBOX_IDLE_POLL_SECONDS", "KAFKA_IDLE_FETCH_MAX_WAIT_MS", "OUTBOX_IDLE_MAX_POLL_SECONDS",
    "JWT_SECRET", "JWT_ISSUER", "JWT_AUDIENCE", "JWT_PUBLIC_KEY", "JWKS_URL", "JWT_ALGORITHMS",
    "HTTP_HOST", "HTTP_PORT", "LOG_LEVEL", "MAX_REQUEST_BODY_BYTES",
]


class TicketsSettings(ServiceSettings):
    service_name = "tickets"
    http_port: int = 8103


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # an install of its own: var/ is made here


def test_the_embedded_defaults() -> None:
    settings = TicketsSettings()

    assert settings.database_url == "sqlite+aiosqlite:///var/tickets.db"
    assert settings.http_port == 8103
    assert settings.kafka() == KafkaSettings(
        bootstrap_servers="127.0.0.1:9092", enable_idempotence=False, partitions=6
    )
    auth = settings.auth()
    assert (auth.issuer, auth.audience, auth.accepted_algorithms) == (
        "crm-platform", "crm-api", ("HS256",)
    )
    assert not auth.uses_development_secret


def test_without_jwt_secret_an_install_signs_with_its_own_random_key(tmp_path: Path) -> None:
    first = TicketsSettings().auth().secret
    key = tmp_path / "var" / "jwt-secret"

    assert first is not None and first.get_secret_value() == key.read_text().strip()
    assert len(first.get_secret_value().encode()) >= 48
    assert key.stat().st_mode & 0o777 == 0o600  # its owner's alone
    # Every service, and `crm token`, of this install reads the same key.
    again = ServiceSettings().auth().secret
    assert again is not None and again.get_secret_value() == first.get_secret_value()
    # Another install has another key.
    key.unlink()
    other = TicketsSettings().auth().secret
    assert other is not None and other.get_secret_value() != first.get_secret_value()


def test_on_postgresql_a_token_key_must_be_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://crm@db/tickets")
    with pytest.raises(ValidationError, match="JWT_SECRET is not set"):
        TicketsSettings()
    monkeypatch.setenv("JWKS_URL", "https://idp.example.com/.well-known/jwks.json")
    assert TicketsSettings().auth().accepted_algorithms == ("RS256",)


def test_the_environment_overrides_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://crm@db/tickets")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    monkeypatch.setenv("KAFKA_ENABLE_IDEMPOTENCE", "true")
    monkeypatch.setenv("KAFKA_PARTITIONS", "24")
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", "30000")
    monkeypatch.setenv("KAFKA_HEARTBEAT_INTERVAL_MS", "5000")
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "250")
    monkeypatch.setenv("OUTBOX_IDLE_POLL_SECONDS", "0.5")
    monkeypatch.setenv("KAFKA_IDLE_FETCH_MAX_WAIT_MS", "2000")
    monkeypatch.setenv("OUTBOX_IDLE_MAX_POLL_SECONDS", "1.5")
    monkeypatch.setenv("JWT_SECRET", "a-production-secret-of-at-least-32-bytes")
    monkeypatch.setenv("JWT_ISSUER", "https://idp.example.com")
    monkeypatch.setenv("JWT_AUDIENCE", "crm")
    monkeypatch.setenv("HTTP_PORT", "9000")
    monkeypatch.setenv("LOG_LEVEL", "debug")

    settings = TicketsSettings()

    assert settings.database_url == "postgresql://crm@db/tickets"
    assert settings.kafka() == KafkaSettings(
        bootstrap_servers="kafka-1:9092,kafka-2:9092",
        enable_idempotence=True,
        partitions=24,
        session_timeout_ms=30_000,
        heartbeat_interval_ms=5_000,
        fetch_max_wait_ms=250,
        idle_fetch_max_wait_ms=2000,
    )
    assert settings.outbox_idle_poll_seconds == 0.5
    assert settings.outbox_idle_max_poll_seconds == 1.5
    auth = settings.auth()
    assert auth.issuer == "https://idp.example.com"
    assert auth.audience == "crm"
    assert not auth.uses_development_secret
    assert settings.http_port == 9000
    assert settings.log_level == "DEBUG"


def test_events_name_their_schema_under_the_configured_base_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    type_name = "crm.contacts.customer_registered.v1"
    catalog_url = f"https://schemas.crm.example/events/{type_name}.json"
    assert ServiceSettings().event_schema_url(type_name, catalog_url) == catalog_url

    monkeypatch.setenv("EVENT_SCHEMA_BASE_URL", "http://gateway:8000/events/")

    assert ServiceSettings().event_schema_url(type_name, catalog_url) == (
        f"http://gateway:8000/events/{type_name}.json"
    )


def test_a_jwks_url_switches_to_rs256(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWKS_URL", "https://idp.example.com/.well-known/jwks.json")

    auth = TicketsSettings().auth()

    assert auth.accepted_algorithms == ("RS256",)
    assert not auth.uses_development_secret


def test_algorithms_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JWKS_URL", "https://idp.example.com/.well-known/jwks.json")
    monkeypatch.setenv("JWT_ALGORITHMS", "RS256, ES256")

    assert TicketsSettings().auth().accepted_algorithms == ("RS256", "ES256")


def test_a_pem_with_escaped_newlines_is_unescaped(monkeypatch: pytest.MonkeyPatch) -> None:
    escaped = "-----BEGIN PUBLIC KEY-----\\nMIIB\\n-----END PUBLIC KEY-----"
    monkeypatch.setenv("JWT_PUBLIC_KEY", escaped)

    assert TicketsSettings().jwt_public_key == (
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"
    )


def test_a_bad_log_level_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_LEVEL", "chatty")

    with pytest.raises(ValidationError):
        TicketsSettings()


def test_a_service_shares_its_database_connections_between_its_workers() -> None:
    from libs.platform.db import SERVICE_POOL_SIZE, default_pool_size

    assert default_pool_size({}) == SERVICE_POOL_SIZE
    assert default_pool_size({"WORKERS": "2"}) == SERVICE_POOL_SIZE // 2
    assert default_pool_size({"WORKERS": "8"}) == 4  # never starved below a few
    assert default_pool_size({"WORKERS": "2", "DATABASE_POOL_SIZE": "25"}) == 25

