"""Every webhook route needs ``webhooks:manage``, pinned, and enforced for every role."""

from __future__ import annotations

from fastapi.routing import APIRoute

from libs.auth.roles import PERMISSIONS, Role
from services.alerts.notifications.api import router
from services.alerts.tests.conftest import Api

ROUTES = {
    ("POST", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks"),
    ("GET", "/api/v1/webhooks/{webhook_id}"),
    ("PATCH", "/api/v1/webhooks/{webhook_id}"),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"),
    ("GET", "/api/v1/webhooks/{webhook_id}/deliveries"),
}


def test_every_webhook_route_needs_webhooks_manage() -> None:
    found = set()
    for route in router.routes:
        assert isinstance(route, APIRoute)
        names = [
            d.call.__name__
            for d in route.dependant.dependencies
            if d.call is not None and d.call.__name__.startswith("require_")
        ]
        assert names == ["require_webhooks_manage"], route.path
        found |= {(m, route.path) for m in route.methods or ()}
    assert found == ROUTES


async def test_only_admins_and_managers_may_touch_webhooks(api: Api) -> None:
    assert PERMISSIONS["webhooks:manage"] == {Role.ADMIN, Role.MANAGER}
    for method, template in ROUTES:
        path = template.format(webhook_id="0" * 36)
        for role in Role:
            response = await api.client.request(
                method, path, json={}, headers=api.auth(roles=[role.value])
            )
            allowed = role in PERMISSIONS["webhooks:manage"]
            assert (response.status_code == 403) != allowed, (method, path, role, response.text)
