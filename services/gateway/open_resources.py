"""Everything the gateway holds open while it runs, built and closed in one place."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.platform.db import create_engine
from libs.platform.migrations import prepare_schema
from services.gateway.api_keys import ApiKeyStore
from services.gateway.authentication import ApiKeyAuthenticator
from services.gateway.migrations import FOLDER as MIGRATIONS
from services.gateway.openapi import PlatformDocument
from services.gateway.proxy import UpstreamProxy, new_upstream_client
from services.gateway.rate_limit import InFlightLimits, RateLimits, TokenBucketLimiter
from services.gateway.routes import RoutingTable
from services.gateway.sessions import SessionPolicy, SessionStore
from services.gateway.settings import Settings
from services.gateway.single_sign_on import OidcProvider
from services.gateway.users import UserStore


@dataclass(slots=True)
class GatewayRuntime:
    settings: Settings
    engine: AsyncEngine
    client: httpx.AsyncClient
    api_keys: ApiKeyStore
    authenticator: ApiKeyAuthenticator
    rate_limits: RateLimits
    proxy: UpstreamProxy
    platform_document: PlatformDocument
    routing: RoutingTable
    users: UserStore
    sessions: SessionStore
    # None unless OIDC_ISSUER and OIDC_CLIENT_ID are set.
    single_sign_on: OidcProvider | None
    # Readiness waits for every service once (decision 0100); later outages of one
    # service do not take the gateway out of rotation.
    upstreams_ready_once: bool = False

    @classmethod
    async def start(cls, settings: Settings, routing: RoutingTable) -> GatewayRuntime:
        engine = create_engine(settings.database_url)
        api_keys = ApiKeyStore(engine)
        try:
            await prepare_schema(engine, MIGRATIONS)
        except BaseException:
            await engine.dispose()
            raise
        client = new_upstream_client(settings)
        upstreams = settings.upstream_urls()
        unplaced = sorted(set(routing.upstreams) - set(upstreams))
        if unplaced:
            await engine.dispose()
            raise ValueError(f"no URL for the upstream services {', '.join(unplaced)}")
        return cls(
            settings=settings,
            engine=engine,
            client=client,
            api_keys=api_keys,
            authenticator=ApiKeyAuthenticator(
                api_keys,
                settings.auth(),
                cache_seconds=settings.api_key_cache_seconds,
                forwarded_token_seconds=settings.forwarded_token_seconds,
            ),
            rate_limits=worker_rate_limits(settings),
            proxy=UpstreamProxy(
                client,
                upstreams,
                in_flight=InFlightLimits(
                    per_caller=settings.caller_max_requests_in_flight,
                    per_tenant=settings.tenant_max_requests_in_flight,
                ),
                body_timeout_seconds=settings.request_body_timeout_seconds,
            ),
            platform_document=PlatformDocument(
                client,
                upstreams,
                routing,
                cache_seconds=settings.openapi_cache_seconds,
                fetch_timeout_seconds=settings.upstream_probe_timeout_seconds,
            ),
            routing=routing,
            users=UserStore(engine),
            sessions=SessionStore(
                engine,
                SessionPolicy(
                    idle=timedelta(hours=settings.session_idle_hours),
                    lifetime=timedelta(days=settings.session_lifetime_days),
                ),
            ),
            single_sign_on=OidcProvider.configured(settings),
        )

    async def stop(self) -> None:
        try:
            await self.client.aclose()
            if self.single_sign_on is not None:
                await self.single_sign_on.close()
        finally:
            await self.engine.dispose()


def worker_rate_limits(settings: Settings) -> RateLimits:
    """This worker process's share of the configured limits: each of the WORKERS
    processes keeps its own buckets, so together they never allow more than configured
    (a client that stays on one connection gets one worker's share)."""
    share = settings.workers
    return RateLimits(
        tenant=TokenBucketLimiter(
            settings.rate_limit_tenant_per_second / share,
            max(1, settings.rate_limit_tenant_burst // share),
        ),
        caller=TokenBucketLimiter(
            settings.rate_limit_caller_per_second / share,
            max(1, settings.rate_limit_caller_burst // share),
        ),
    )
