"""Every alerts route's permission, pinned, and enforced for every role."""

from __future__ import annotations

from fastapi.routing import APIRoute

from libs.auth.roles import PERMISSIONS, Role
from services.alerts.api import router
from services.alerts.tests.conftest import Api

PINNED = {
    ("GET", "/api/v1/churn/risks"): "customers:read",
    ("GET", "/api/v1/customers/{customer_id}/churn-risk"): "customers:read",
    ("GET", "/api/v1/churn/rules"): "customers:read",
    ("PUT", "/api/v1/churn/rules"): "churn:configure",
    ("POST", "/api/v1/churn/backtests"): "churn:configure",
    ("POST", "/api/v1/churn/rankings"): "churn:configure",
    ("GET", "/api/v1/churn/rankings/{ranking_id}"): "customers:read",
    ("GET", "/api/v1/churn/weekly"): "customers:read",
    ("GET", "/api/v1/churn/alerts"): "customers:read",
    ("GET", "/api/v1/reminders"): "customers:read",
    ("POST", "/api/v1/churn/alerts/{alert_id}/acknowledge"): "customers:write",
    ("POST", "/api/v1/churn/alerts/{alert_id}/resolve"): "customers:write",
    ("POST", "/api/v1/churn/alerts/{alert_id}/dismiss"): "customers:write",
}


def declared() -> dict[tuple[str, str], str]:
    found = {}
    for route in router.routes:
        assert isinstance(route, APIRoute)
        names = [
            d.call.__name__
            for d in route.dependant.dependencies
            if d.call is not None and d.call.__name__.startswith("require_")
        ]
        assert len(names) == 1, f"{route.path} needs exactly one permission, has {names}"
        permission = names[0].removeprefix("require_").replace("_", ":", 1)
        for method in route.methods or ():
            found[(method, route.path)] = permission
    return found


def test_every_route_has_its_pinned_permission() -> None:
    assert declared() == PINNED


async def test_every_role_is_refused_exactly_where_the_matrix_says(api: Api) -> None:
    for (method, template), permission in PINNED.items():
        path = template.format(customer_id="c-1", alert_id="0" * 36, ranking_id="0" * 36)
        for role in Role:
            response = await api.client.request(
                method, path, json={}, headers=api.auth(roles=[role.value])
            )
            allowed = role in PERMISSIONS[permission]
            assert (response.status_code == 403) != allowed, (method, path, role, response.text)
