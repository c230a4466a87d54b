"""The routing table: who owns which path, and the coarse role check per method."""

from __future__ import annotations

import pytest

from libs.auth import PERMISSIONS, Principal, Role
from libs.platform.service import PublicRoute, under
from services.bootstrap import gateway_routing
from services.gateway.routes import ANY_WRITE, RoutingTable

ROUTING = gateway_routing()  # the platform's table, from every service's declaration
route_for = ROUTING.route_for


def caller(*roles: str) -> Principal:
    return Principal(subject="u", tenant_id="acme", roles=frozenset(roles))


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/api/v1/customers/c-1/360", "customer360"),
        ("/api/v1/customers/c-1/360/", "customer360"),
        ("/api/v1/projections/customer360", "customer360"),
        ("/api/v1/projections/customer360/status", "customer360"),
        ("/api/v1/customers", "contacts"),
        ("/api/v1/customers/c-1", "contacts"),
        ("/api/v1/customers/c-1/interactions", "contacts"),
        ("/api/v1/customers/import", "contacts"),
        ("/api/v1/customers/imports", "contacts"),
        ("/api/v1/customers/imports/5f0c9a77-2b1e-4c8e-9d0b-6f1d3c1e7a51", "contacts"),
        ("/api/v1/customers/360", "contacts"),  # a customer whose id is "360"
        ("/api/v1/customers/c-1/360/history", "contacts"),
        ("/api/v1/custom-fields/vip_level", "contacts"),
        ("/api/v1/orders", "pipeline"),
        ("/api/v1/orders/o-1/refunds", "pipeline"),
        ("/api/v1/customers/c-1/orders", "pipeline"),
        ("/api/v1/customers/c-1/purchase-figures", "pipeline"),
        ("/api/v1/customers/orders", "contacts"),  # a customer whose id is "orders"
        ("/api/v1/deals", "pipeline"),
        ("/api/v1/deals/d-1/stage", "pipeline"),
        ("/api/v1/deal-stages", "pipeline"),
        ("/api/v1/funnel", "pipeline"),
        ("/api/v1/tasks", "pipeline"),
        ("/api/v1/leads/l-1/convert", "pipeline"),
        ("/api/v1/assignment-rules", "pipeline"),
        ("/api/v1/contracts/k-1/renew", "pipeline"),
        ("/api/v1/customers/c-1/contracts", "pipeline"),
        ("/api/v1/customers/c-1/churn-risk", "alerts"),
        ("/api/v1/customers/churn-risk", "contacts"),  # a customer whose id is "churn-risk"
        ("/api/v1/churn/risks", "alerts"),
        ("/api/v1/churn/rules", "alerts"),
        ("/api/v1/analytics/retention", "analytics"),
        ("/api/v1/analytics/segments/vip/members", "analytics"),
    ],
)
def test_each_path_has_one_owner(path: str, upstream: str) -> None:
    route = route_for(path)

    assert route is not None and route.upstream == upstream


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/customersx",
        "/api/v1/projections/customer360x",
        "/api/v2/customers",
        "/api/v1/dealsx",
        "/api/v1/ordersx",
        "/api/v1/customers/../api-keys",
        "/api/v1/customers/./c-1",
    ],
)
def test_paths_nobody_owns_match_nothing(path: str) -> None:
    assert route_for(path) is None


def test_reads_need_customers_read_which_every_tenant_role_has() -> None:
    route = route_for("/api/v1/customers")
    assert route is not None

    for role in Role:
        # The host's operator reads ops figures, never a tenant's customers.
        assert route.permits(caller(role.value), "GET") == (role is not Role.OPERATOR)
    assert not route.permits(caller("superuser"), "GET")


def test_a_read_only_caller_is_stopped_on_any_write() -> None:
    for path in ("/api/v1/customers", "/api/v1/customers/c-1/360", "/api/v1/custom-fields/x"):
        route = route_for(path)
        assert route is not None
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert not route.permits(caller("viewer"), method)


def test_the_coarse_check_is_never_stricter_than_the_matrix() -> None:
    # Marketing may only log interactions and consent, and still gets past the gateway.
    customers = route_for("/api/v1/customers/c-1/consent")
    assert customers is not None and customers.permits(caller("marketing"), "POST")
    # Custom fields are the admin's alone, here as in contacts.
    fields = route_for("/api/v1/custom-fields/vip")
    assert fields is not None
    assert fields.roles_for("PUT") == ["admin"]


def test_import_jobs_are_for_the_roles_that_may_import_both_to_submit_and_to_read() -> None:
    for path in ("/api/v1/customers/import", "/api/v1/customers/imports/j-1"):
        imports = route_for(path)
        assert imports is not None and imports.upstream == "contacts"
        for method in ("GET", "POST"):
            assert imports.roles_for(method) == ["admin", "integration", "manager"]


def test_every_route_names_permissions_from_the_matrix() -> None:
    for route in ROUTING.routes:
        assert route.reads in PERMISSIONS
        assert route.writes <= set(PERMISSIONS)
    assert "customers:read" not in ANY_WRITE


def test_a_catch_all_comes_after_specific_routes_whatever_order_services_are_listed() -> None:
    catch_all = PublicRoute("/api/v1/customers/...", under("/api/v1/customers"), fallback=True)
    orders = PublicRoute("/api/v1/customers/{id}/orders", under("/api/v1/customers/c-1/orders"))

    table = RoutingTable.declared([("contacts", [catch_all]), ("pipeline", [orders])])

    owner = table.route_for("/api/v1/customers/c-1/orders")
    assert owner is not None and owner.upstream == "pipeline"
    other = table.route_for("/api/v1/customers/c-1")
    assert other is not None and other.upstream == "contacts"
