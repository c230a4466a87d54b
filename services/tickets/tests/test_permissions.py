"""Every route's permission, pinned: a caller without it gets 403, one with it gets past."""

from __future__ import annotations

from fastapi import FastAPI

from libs.auth.roles import Role, roles_allowed
from services.tickets.tests.conftest import Api

ROUTES = {
    ("POST", "/api/v1/tickets"): "tickets:write",
    ("GET", "/api/v1/tickets"): "tickets:read",
    ("GET", "/api/v1/tickets/{ticket_id}"): "tickets:read",
    ("POST", "/api/v1/tickets/{ticket_id}/assignment"): "tickets:write",
    ("POST", "/api/v1/tickets/{ticket_id}/replies"): "tickets:write",
    ("POST", "/api/v1/tickets/{ticket_id}/status"): "tickets:write",
    ("POST", "/api/v1/tickets/{ticket_id}/reopen"): "tickets:write",
    ("POST", "/api/v1/tickets/{ticket_id}/priority"): "tickets:write",
    ("POST", "/api/v1/tickets/{ticket_id}/follow-up-visits"): "tickets:write",
    ("GET", "/api/v1/customers/{customer_id}/tickets"): "tickets:read",
    ("PUT", "/api/v1/sla-policies/{name}"): "sla:manage",
    ("GET", "/api/v1/sla-policies/{name}"): "tickets:read",
    ("PUT", "/api/v1/business-calendars/{name}"): "sla:manage",
    ("GET", "/api/v1/business-calendars/{name}"): "tickets:read",
    ("POST", "/api/v1/tickets/{ticket_id}/csat-survey"): "tickets:write",
    ("GET", "/api/v1/service-stats"): "tickets:read",
    ("PUT", "/api/v1/escalation-rules"): "sla:manage",
    ("GET", "/api/v1/escalation-rules"): "tickets:read",
    ("PUT", "/api/v1/dispatch-rules"): "sla:manage",
    ("GET", "/api/v1/dispatch-rules"): "tickets:read",
    ("POST", "/api/v1/customers/{customer_id}/nps-survey"): "tickets:write",
    ("GET", "/api/v1/ops/tickets"): "ops:read",
    ("POST", "/api/v1/ops/tickets/projections/{name}/rebuilds"): "ops:rebuild",
    ("GET", "/api/v1/ops/tickets/projections/{name}/rebuilds/{rebuild_id}"): "ops:read",
}
# The link's one-time token is the credential: no login, no role.
OPEN_TO_LINK_HOLDERS = {
    ("GET", "/api/v1/surveys/{token}"),
    ("POST", "/api/v1/surveys/{token}/answer"),
}


def test_every_route_is_pinned(built_app: FastAPI) -> None:
    served = {
        (method.upper(), path)
        for path, operations in built_app.openapi()["paths"].items()
        if path.startswith("/api/")
        for method in operations
    }
    assert served == set(ROUTES) | OPEN_TO_LINK_HOLDERS


def test_support_works_tickets_and_managers_set_the_sla() -> None:
    assert Role.SUPPORT in roles_allowed("tickets:write")
    assert Role.SALES not in roles_allowed("tickets:write")
    assert roles_allowed("sla:manage") == {Role.ADMIN, Role.MANAGER}


async def test_each_route_needs_its_permission(api: Api) -> None:
    for (method, template), permission in ROUTES.items():
        path = template.format(ticket_id="t-1", customer_id="c-1", name="default", rebuild_id="r-1")
        allowed = roles_allowed(permission)
        lacking = next((r.value for r in Role if r not in allowed), "nobody")
        holder = min((r.value for r in allowed if r != Role.ADMIN), default=Role.ADMIN.value)

        denied = await api.client.request(method, path, json={}, headers=api.auth(roles=[lacking]))
        assert denied.status_code == 403, (method, template, lacking)
        granted = await api.client.request(method, path, json={}, headers=api.auth(roles=[holder]))
        assert granted.status_code not in (401, 403), (method, template, holder, granted.text)
        anonymous = await api.client.request(method, path, json={})
        assert anonymous.status_code == 401, (method, template)


def test_the_gateway_sends_tickets_paths_here_and_prechecks_the_same_permissions() -> None:
    from libs.auth import Principal
    from services.bootstrap import gateway_routing

    routing = gateway_routing()
    for path in (
        "/api/v1/tickets",
        "/api/v1/tickets/t-1/replies",
        "/api/v1/customers/c-1/tickets",  # below contacts' catch-all, which is a fallback
        "/api/v1/sla-policies/default",
        "/api/v1/business-calendars/cn",
        "/api/v1/escalation-rules",
        "/api/v1/dispatch-rules",
        "/api/v1/service-stats",
        "/api/v1/customers/c-1/nps-survey",
    ):
        route = routing.route_for(path)
        assert route is not None and route.upstream == "tickets", path
    assert routing.route_for("/api/v1/customers/c-1").upstream == "contacts"  # type: ignore[union-attr]

    def caller(role: str) -> Principal:
        return Principal(subject="u", tenant_id="acme", roles=frozenset({role}))

    tickets = routing.route_for("/api/v1/tickets")
    policies = routing.route_for("/api/v1/sla-policies/default")
    assert tickets is not None and policies is not None
    assert tickets.permits(caller("viewer"), "GET")
    assert not tickets.permits(caller("sales"), "POST")
    assert tickets.permits(caller("support"), "POST")
    assert not policies.permits(caller("support"), "PUT")
    assert policies.permits(caller("manager"), "PUT")
