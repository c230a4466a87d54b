"""The gateway's settings: the shared ones plus where the upstreams are and how hard to push them.

Every field comes from the environment under its upper-case name (``CONTACTS_URL``,
``UPSTREAM_READ_TIMEOUT_SECONDS``, ``RATE_LIMIT_TENANT_PER_SECOND``, ...).
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from libs.platform.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: ClassVar[str] = "gateway"

    http_port: int = 8000
    # Customer imports (a 100,000-row CSV is 10-20 MB) pass through in one request;
    # the contacts service accepts up to the same size.
    max_request_body_bytes: int = 64 * 1024 * 1024

    # Where each upstream service listens, by service name. The composition root fills
    # in every declared service (from ``<NAME>_URL``, else its `make run` port);
    # UPSTREAMS='{"contacts": "http://..."}' sets them all at once.
    upstreams: dict[str, str] = Field(default_factory=dict)

    # A service that cannot take a connection within a second is down for practical
    # purposes: the caller gets a 503 quickly instead of waiting with it.
    upstream_connect_timeout_seconds: float = Field(default=1.0, gt=0)
    # The longest silence tolerated from a service once the request is sent (also
    # between chunks of a body), then 504. Imports of big files need the most.
    upstream_read_timeout_seconds: float = Field(default=10.0, gt=0)
    upstream_max_connections: int = Field(default=200, gt=0)
    # The gateway's requests mostly wait on a service (which sheds its own excess with a
    # 503 the gateway passes on): as many in flight as it has connections to them.
    max_requests_in_flight: int = Field(default=200, ge=1)
    # How long a request may wait for one of those connections (a free pooled one, or a
    # new one being made) before the gateway answers 503 for its own overload. Longer
    # than the connect timeout: a burst on a busy machine queues rather than fails.
    upstream_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    # The longest silence tolerated from a client while it sends its request body, then
    # 408. A small body (up to 64 KiB declared) must arrive whole within it.
    request_body_timeout_seconds: float = Field(default=10.0, gt=0)
    # Requests one caller (tenant and subject) and one tenant may have in flight at once,
    # from the first byte of the body to the last of the answer; beyond them 429. Under
    # the pool's size, so no one caller or tenant can take every connection. 0: no limit.
    caller_max_requests_in_flight: int = Field(default=64, ge=0)
    tenant_max_requests_in_flight: int = Field(default=150, ge=0)
    # Kept under uvicorn's 5 s keep-alive so the gateway drops an idle connection
    # before the service does, instead of reusing one that is being closed.
    upstream_keepalive_seconds: float = Field(default=4.0, ge=0)

    # How long a looked-up API key is trusted before the database is asked again:
    # the longest a revocation takes to reach the other gateway processes.
    api_key_cache_seconds: float = Field(default=5.0, ge=0)
    # Lifetime of the JWT the gateway signs for an API-key caller's request.
    forwarded_token_seconds: int = Field(default=120, ge=10)

    # Token buckets per process; 0 switches that limit off (benchmarks, trusted networks).
    rate_limit_tenant_per_second: float = Field(default=1000.0, ge=0)
    rate_limit_tenant_burst: int = Field(default=2000, ge=1)
    rate_limit_caller_per_second: float = Field(default=200.0, ge=0)
    rate_limit_caller_burst: int = Field(default=400, ge=1)

    # The merged /openapi.json is rebuilt from the services' documents at most this often.
    openapi_cache_seconds: float = Field(default=30.0, ge=0)
    # /healthz and /openapi.json never wait longer than this for a service.
    upstream_probe_timeout_seconds: float = Field(default=1.0, gt=0)

    # Console sign-in (services/gateway/sessions.py, decision 0108). The bearer token a
    # session hands out lives minutes: a disabled user or a changed role takes effect
    # within it. The session itself ends after SESSION_IDLE_HOURS without use.
    session_token_seconds: int = Field(default=600, ge=60, le=3600)
    session_idle_hours: float = Field(default=12.0, gt=0)
    session_lifetime_days: float = Field(default=14.0, gt=0)
    # "auto": the cookie is Secure when the console was reached over https (or through
    # a proxy that says so in X-Forwarded-Proto); "always" for every deployment behind TLS.
    session_cookie_secure: Literal["auto", "always"] = "auto"
    # Wrong passwords in a row before an account locks, and for how long.
    sign_in_max_failures: int = Field(default=5, ge=1)
    sign_in_lockout_minutes: float = Field(default=15.0, gt=0)
    invitation_days: float = Field(default=7.0, gt=0)
    # Where people reach this gateway (https://crm.example.com), for the links it hands
    # out (invitations, resets) and the OIDC callback; unset: the address of the request.
    public_url: str | None = None
    password_reset_hours: float = Field(default=24.0, gt=0)

    # Single sign-on through an OpenID Connect provider (authorization code with PKCE).
    # Off unless OIDC_ISSUER is set. The tenant comes from OIDC_TENANT_CLAIM, or is
    # OIDC_TENANT for a provider that serves one tenant; the roles from OIDC_ROLES_CLAIM
    # (unknown roles ignored), else OIDC_DEFAULT_ROLES; none at all: sign-in refused.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid email profile"
    oidc_tenant_claim: str = "tenant"
    oidc_tenant: str | None = None
    oidc_roles_claim: str = "roles"
    oidc_default_roles: Annotated[tuple[str, ...], NoDecode] = ()
    # The name on the console's sign-in button ("Sign in with ...").
    oidc_display_name: str = "single sign-on"

    # Browser origins allowed to call the API (the web console), comma-separated.
    cors_allow_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("upstreams")
    @classmethod
    def _absolute_http_urls(cls, value: dict[str, str]) -> dict[str, str]:
        urls = {}
        for name, given in value.items():
            url = given.strip().rstrip("/")
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{name}: {given!r} is not an http(s) URL")
            urls[name] = url
        return urls

    @field_validator("cors_allow_origins", "oidc_default_roles", mode="before")
    @classmethod
    def _split_lists(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    def upstream_urls(self) -> dict[str, str]:
        """Base URL of every upstream service."""
        return dict(self.upstreams)
