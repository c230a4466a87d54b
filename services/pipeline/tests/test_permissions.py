"""Every pipeline route and the one permission it requires, pinned."""

from __future__ import annotations

from fastapi.routing import APIRoute

from services.pipeline.api import routers

# (method, path) -> permission. A new route must be added here on purpose.
PINNED = {
    ("POST", "/api/v1/orders"): "orders:write",
    ("POST", "/api/v1/orders/import"): "orders:import",
    ("GET", "/api/v1/orders/{order_id}"): "customers:read",
    ("POST", "/api/v1/orders/{order_id}/refunds"): "orders:refund",
    ("POST", "/api/v1/orders/{order_id}/cancel"): "orders:write",
    ("GET", "/api/v1/customers/{customer_id}/orders"): "customers:read",
    ("GET", "/api/v1/customers/{customer_id}/purchase-figures"): "customers:read",
    ("GET", "/api/v1/deal-stages"): "customers:read",
    ("PUT", "/api/v1/deal-stages"): "pipeline:configure",
    ("POST", "/api/v1/deals"): "deals:write",
    ("GET", "/api/v1/deals"): "customers:read",
    ("GET", "/api/v1/deals/{deal_id}"): "customers:read",
    ("POST", "/api/v1/deals/{deal_id}/stage"): "deals:write",
    ("POST", "/api/v1/deals/{deal_id}/quotes"): "deals:write",
    ("GET", "/api/v1/funnel"): "customers:read",
    ("POST", "/api/v1/leads"): "leads:write",
    ("GET", "/api/v1/leads"): "customers:read",
    ("GET", "/api/v1/leads/{lead_id}"): "customers:read",
    ("PUT", "/api/v1/leads/{lead_id}/owner"): "leads:write",
    ("POST", "/api/v1/leads/{lead_id}/qualify"): "leads:write",
    ("POST", "/api/v1/leads/{lead_id}/disqualify"): "leads:write",
    ("POST", "/api/v1/leads/{lead_id}/convert"): "leads:write",
    ("DELETE", "/api/v1/leads/{lead_id}/personal-data"): "customers:erase",
    ("GET", "/api/v1/assignment-rules"): "customers:read",
    ("PUT", "/api/v1/assignment-rules"): "pipeline:configure",
    ("POST", "/api/v1/tasks"): "tasks:write",
    ("GET", "/api/v1/tasks"): "customers:read",
    ("GET", "/api/v1/tasks/{task_id}"): "customers:read",
    ("POST", "/api/v1/tasks/{task_id}/reschedule"): "tasks:write",
    ("POST", "/api/v1/tasks/{task_id}/complete"): "tasks:write",
    ("POST", "/api/v1/contracts"): "contracts:write",
    ("GET", "/api/v1/contracts/{contract_id}"): "customers:read",
    ("POST", "/api/v1/contracts/{contract_id}/renew"): "contracts:write",
    ("POST", "/api/v1/contracts/{contract_id}/terminate"): "contracts:write",
    ("GET", "/api/v1/customers/{customer_id}/contracts"): "customers:read",
}


def _required(route: APIRoute) -> list[str]:
    found = []
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        name = getattr(dependency.call, "__name__", "")
        if name.startswith("require_"):
            resource, _, action = name.removeprefix("require_").rpartition("_")
            found.append(f"{resource}:{action}")
        stack.extend(dependency.dependencies)
    return found


def test_every_route_requires_exactly_its_pinned_permission() -> None:
    declared = {
        (method, route.path): _required(route)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert declared == {route: [permission] for route, permission in PINNED.items()}
