"""``crm users``: console users from the command line, for the first admin of a tenant
(nobody can invite them through the console yet) and for an operator helping someone
locked out of it. Each prints a one-time link to set a password."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from libs.platform.errors import DomainError

users = typer.Typer(no_args_is_help=True, help=__doc__)


@users.command("invite")
def invite_user(
    email: Annotated[str, typer.Argument(help="their e-mail address, the name they sign in with")],
    tenant: Annotated[str, typer.Option(help="tenant id")] = "demo",
    name: Annotated[str, typer.Option(help="their name as shown")] = "",
    roles: Annotated[str, typer.Option(help="comma-separated roles")] = "admin",
) -> None:
    """Invite a console user; prints the link that lets them set a password."""
    granted = [r.strip() for r in roles.split(",") if r.strip()]
    _print_link(tenant, email, name or email, granted, new=True)


@users.command("reset")
def reset_password(
    email: Annotated[str, typer.Argument(help="the user's e-mail address")],
    tenant: Annotated[str, typer.Option(help="tenant id")] = "demo",
) -> None:
    """Print a one-time link for a user to set a new password."""
    _print_link(tenant, email, "", [], new=False)


def _print_link(tenant: str, email: str, name: str, roles: list[str], *, new: bool) -> None:
    try:
        print(asyncio.run(_hand_out(tenant, email, name, roles, new=new)))
    except DomainError as refused:
        raise typer.BadParameter(str(refused)) from None


async def _hand_out(tenant: str, email: str, name: str, roles: list[str], *, new: bool) -> str:
    # Imported here: every `crm` process builds this command group, and only this one
    # needs the gateway's modules (the routers, Argon2).
    from datetime import UTC, datetime, timedelta

    from libs.platform.db import create_engine
    from libs.platform.migrations import prepare_schema
    from libs.platform.preflight import create_postgres_databases, service_settings
    from services.gateway.api.conventions import set_password_url
    from services.gateway.migrations import FOLDER as MIGRATIONS
    from services.gateway.service import SERVICE
    from services.gateway.settings import Settings
    from services.gateway.users import UserStore, email_of, invite, link_for

    # The gateway's own database under the platform's DATABASE_URL, as `crm run` gives it.
    settings: Settings = service_settings(SERVICE)
    if settings.database_url.startswith("postgresql"):
        await create_postgres_databases([settings.database_url])
    engine = create_engine(settings.database_url)
    try:
        await prepare_schema(engine, MIGRATIONS)
        store = UserStore(engine)
        now = datetime.now(UTC)
        if new:
            user = await store.add(
                invite(
                    tenant_id=tenant, email=email, name=name, roles=roles, by="crm users", now=now
                )
            )
        else:
            found = await store.find(tenant, email_of(email))
            if found is None:
                raise typer.BadParameter(f"no user {email} in tenant {tenant}")
            user = found
        link = link_for(
            user,
            now,
            invitation=timedelta(days=settings.invitation_days),
            reset=timedelta(hours=settings.password_reset_hours),
        )
        await store.add_link(link)
    finally:
        await engine.dispose()
    return set_password_url(
        settings.public_url or f"http://127.0.0.1:{settings.http_port}", link.secret
    )
