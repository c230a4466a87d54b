"""What notifications add to the alerts service's settings (environment variables)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.alerts.notifications.domain import DeliveryPolicy


class NotificationSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    # False: this process serves the API only; another one delivers.
    run_webhook_worker: bool = True
    webhook_first_retry_seconds: float = Field(default=5.0, gt=0)
    webhook_max_backoff_seconds: float = Field(default=3600.0, gt=0)
    webhook_max_attempts: int = Field(default=10, ge=1)
    webhook_disable_after: int = Field(default=15, ge=1)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # How often the worker looks for due retries when nothing wakes it.
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_concurrency: int = Field(default=8, ge=1)
    # Development and tests only: http:// and loopback or private hosts as targets, when
    # subscribing and at delivery (docs/decisions/0094).
    webhook_allow_insecure_targets: bool = False
    # E-mail (mailto: subscriptions) only when a server is configured.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_use_tls: bool = False  # implicit TLS (port 465)
    smtp_starttls: bool | None = None  # None: upgrade when the server offers it
    smtp_from: str = "crm-alerts@localhost"

    def delivery_policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(
            first_retry_seconds=self.webhook_first_retry_seconds,
            max_backoff_seconds=self.webhook_max_backoff_seconds,
            max_attempts=self.webhook_max_attempts,
            disable_after=self.webhook_disable_after,
        )
