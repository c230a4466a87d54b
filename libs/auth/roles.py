"""The role catalogue and what each role may do.

The matrix lives here, once, so every service asks the same question the same
way (``require("customers:merge")``) and docs/roles.md can be checked against it.
Permissions are named ``<resource>:<action>``; a service that needs a new one
adds a row here (and to docs/roles.md) instead of checking roles itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType


class Role(StrEnum):
    ADMIN = "admin"  # runs the tenant: every permission
    MANAGER = "manager"  # leads a sales or service team: merges, imports, oversight
    SALES = "sales"  # owns customers, leads and deals day to day
    SUPPORT = "support"  # handles tickets and complaints for existing customers
    MARKETING = "marketing"  # campaigns and consent, not ownership of customer records
    VIEWER = "viewer"  # read-only: auditors, analysts, executives
    INTEGRATION = "integration"  # machine callers (ERP, marketing automation, imports)
    # Runs the platform for every tenant (the host's own identity, never a tenant's):
    # what acts on all tenants at once, such as rebuilding a shared projection.
    OPERATOR = "operator"


# Every role of a tenant's people and systems (not the host's operator): what a
# tenant's token or API key may carry.
TENANT_ROLES = frozenset(Role) - {Role.OPERATOR}

PERMISSIONS: Mapping[str, frozenset[Role]] = MappingProxyType(
    {
        "customers:read": TENANT_ROLES,
        "customers:write": frozenset(
            {Role.ADMIN, Role.MANAGER, Role.SALES, Role.SUPPORT, Role.INTEGRATION}
        ),
        # Merging rewrites two customers' histories into one: a judgement call for a lead.
        "customers:merge": frozenset({Role.ADMIN, Role.MANAGER}),
        # Erasure (right to be forgotten) cannot be undone, so only the tenant admin.
        "customers:erase": frozenset({Role.ADMIN}),
        "customers:import": frozenset({Role.ADMIN, Role.MANAGER, Role.INTEGRATION}),
        # Custom field definitions change the shape of every customer of the tenant.
        "custom_fields:write": frozenset({Role.ADMIN}),
        "interactions:write": frozenset(
            {Role.ADMIN, Role.MANAGER, Role.SALES, Role.SUPPORT, Role.MARKETING, Role.INTEGRATION}
        ),
        # Consent arrives through every channel (a call, a campaign unsubscribe, a sync).
        "consent:write": frozenset(
            {Role.ADMIN, Role.MANAGER, Role.SALES, Role.SUPPORT, Role.MARKETING, Role.INTEGRATION}
        ),
        # The sales pipeline: leads come from forms and campaigns too (marketing, sync).
        "leads:write": frozenset(
            {Role.ADMIN, Role.MANAGER, Role.SALES, Role.MARKETING, Role.INTEGRATION}
        ),
        # Assignment rules and deal stages shape every owner's pipeline: team leads.
        "pipeline:configure": frozenset({Role.ADMIN, Role.MANAGER}),
        "deals:write": frozenset({Role.ADMIN, Role.MANAGER, Role.SALES}),
        "contracts:write": frozenset({Role.ADMIN, Role.MANAGER, Role.SALES, Role.INTEGRATION}),
        # Follow-ups are created by people and by other systems (churn alerts).
        "tasks:write": frozenset(
            {Role.ADMIN, Role.MANAGER, Role.SALES, Role.SUPPORT, Role.INTEGRATION}
        ),
        # Orders arrive from sales and from ERP or shop syncs (and imports of history).
        "orders:write": frozenset({Role.ADMIN, Role.MANAGER, Role.SALES, Role.INTEGRATION}),
        # Historic orders in bulk (a migration, an ERP backfill), like customer imports.
        "orders:import": frozenset({Role.ADMIN, Role.MANAGER, Role.INTEGRATION}),
        # Giving money back is a judgement call: team leads and the tenant admin.
        "orders:refund": frozenset({Role.ADMIN, Role.MANAGER}),
        # The loyalty programme's rules, rewards and campaigns are marketing's to run.
        "loyalty:manage": frozenset({Role.ADMIN, Role.MARKETING}),
        # Redeeming (and cancelling a redemption) for a customer at the counter or the
        # service desk; a shop's integration redeems at checkout.
        "loyalty:redeem": frozenset(
            {Role.ADMIN, Role.MANAGER, Role.SALES, Role.SUPPORT, Role.INTEGRATION}
        ),
        # Points out of thin air (or taken away): a lead's call, with a reason.
        "loyalty:adjust": frozenset({Role.ADMIN, Role.MANAGER}),
        # A customer checks in through an app (integration) or at a counter.
        "loyalty:check_in": frozenset(
            {Role.ADMIN, Role.MANAGER, Role.SALES, Role.SUPPORT, Role.INTEGRATION}
        ),
        # API keys act for the whole tenant without a person behind them (the gateway).
        "api_keys:manage": frozenset({Role.ADMIN}),
        # Who may sign in to the console, and in which roles: the tenant admin.
        "users:manage": frozenset({Role.ADMIN}),
        "tickets:read": TENANT_ROLES,
        # Support works tickets; machine callers (web forms, a call centre) open them.
        "tickets:write": frozenset({Role.ADMIN, Role.MANAGER, Role.SUPPORT, Role.INTEGRATION}),
        # SLA policies and business calendars set the promises the whole team is held to.
        "sla:manage": frozenset({Role.ADMIN, Role.MANAGER}),
        # Churn rules decide whom every rep is warned about: team leads.
        "churn:configure": frozenset({Role.ADMIN, Role.MANAGER}),
        # Webhook and e-mail subscriptions send the tenant's events out of the platform.
        "webhooks:manage": frozenset({Role.ADMIN, Role.MANAGER}),
        # Exports carry every customer behind a figure out of the platform: team leads.
        "analytics:export": frozenset({Role.ADMIN, Role.MANAGER}),
        # A segment's entries and exits drive campaigns: marketing defines its own.
        "segments:write": frozenset({Role.ADMIN, Role.MANAGER, Role.MARKETING}),
        # Backlogs, dead letters and rebuild progress: counts only, no customer data.
        "ops:read": frozenset({Role.ADMIN, Role.MANAGER, Role.OPERATOR}),
        # A rebuild re-reads every topic and swaps the view every tenant reads: not a
        # tenant's admin's to start.
        "ops:rebuild": frozenset({Role.OPERATOR}),
    }
)


# What acts on every tenant at once: the operator's, and no tenant role's.
PLATFORM_WIDE = frozenset({"ops:rebuild"})


class UnknownPermission(KeyError):
    """A permission name that is not in the matrix: a typo caught at import time."""


def roles_allowed(permission: str) -> frozenset[Role]:
    try:
        return PERMISSIONS[permission]
    except KeyError:
        raise UnknownPermission(permission) from None


def is_allowed(roles: Iterable[str], permission: str) -> bool:
    """True when any of the caller's roles grants the permission.

    Roles outside the catalogue grant nothing (a newer identity provider may
    know roles this code does not).
    """
    allowed = roles_allowed(permission)
    return any(role in allowed for role in roles)
