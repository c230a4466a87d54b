"""Which permission each contacts route needs, pinned route by route.

The table is the specification: a route added without a row fails the first test,
and a route guarded by another permission than its row says fails the second
(the 403 names the permission that was checked).
"""

from __future__ import annotations

import re

from fastapi import FastAPI

from libs.auth.roles import PERMISSIONS
from services.contacts.tests.conftest import Api

ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/customers"): "customers:write",
    ("GET", "/api/v1/customers"): "customers:read",
    ("GET", "/api/v1/customers/{customer_id}"): "customers:read",
    ("PATCH", "/api/v1/customers/{customer_id}"): "customers:write",
    ("POST", "/api/v1/customers/{customer_id}/tags"): "customers:write",
    ("DELETE", "/api/v1/customers/{customer_id}/tags/{tag}"): "customers:write",
    ("PUT", "/api/v1/customers/{customer_id}/owner"): "customers:write",
    ("PUT", "/api/v1/customers/{customer_id}/key-contacts/{role}"): "customers:write",
    ("DELETE", "/api/v1/customers/{customer_id}/key-contacts/{role}"): "customers:write",
    ("PUT", "/api/v1/customers/{customer_id}/referrer"): "customers:write",
    ("POST", "/api/v1/customers/{customer_id}/interactions"): "interactions:write",
    ("POST", "/api/v1/customers/{customer_id}/merge"): "customers:merge",
    ("PUT", "/api/v1/customers/{customer_id}/consents/{channel}"): "consent:write",
    ("GET", "/api/v1/customers/{customer_id}/history"): "customers:read",
    ("GET", "/api/v1/customers/{customer_id}/export"): "customers:read",
    ("DELETE", "/api/v1/customers/{customer_id}/personal-data"): "customers:erase",
    ("POST", "/api/v1/customers/import"): "customers:import",
    ("POST", "/api/v1/customers/imports"): "customers:import",
    # Reading a job needs the import permission too: its report lists customers' rows.
    ("GET", "/api/v1/customers/imports/{job_id}"): "customers:import",
    ("PUT", "/api/v1/custom-fields/{name}"): "custom_fields:write",
    ("GET", "/api/v1/custom-fields"): "customers:read",
    ("GET", "/api/v1/ops/contacts"): "ops:read",
    ("POST", "/api/v1/ops/contacts/projections/{name}/rebuilds"): "ops:rebuild",
    ("GET", "/api/v1/ops/contacts/projections/{name}/rebuilds/{rebuild_id}"): "ops:read",
}

# A value for each path parameter, so that every route can be called.
PATH_VALUES = {
    "customer_id": "c-1",
    "tag": "vip",
    "role": "assistant",
    "channel": "email",
    "name": "seats",
    "job_id": "j-1",
    "rebuild_id": "r-1",
}


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    # The published document: what clients can call (every route of the router is
    # in it; none is hidden from the schema).
    paths: dict[str, dict[str, object]] = app.openapi()["paths"]
    return {
        (method.upper(), path)
        for path, operations in paths.items()
        if path.startswith("/api/")
        for method in operations
    }


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


def test_every_route_of_the_contacts_api_has_its_permission_in_the_table(
    built_app: FastAPI,
) -> None:
    assert served_routes(built_app) == set(ROUTES)
    assert set(ROUTES.values()) <= set(PERMISSIONS)


async def test_each_route_checks_exactly_its_permission(api: Api) -> None:
    # A role outside the catalogue grants nothing: each 403 names what was needed.
    checked: dict[tuple[str, str], str] = {}
    for method, path in ROUTES:
        response = await api.client.request(
            method, concrete(path), headers=api.auth(roles=["visitor"])
        )
        assert response.status_code == 403, (method, path, response.text)
        checked[method, path] = response.json()["detail"].split(" needs ")[0]

    assert checked == ROUTES


REFUSED = [
    ("viewer", ("POST", "/api/v1/customers/{customer_id}/interactions")),
    ("viewer", ("POST", "/api/v1/customers")),
    ("viewer", ("PUT", "/api/v1/customers/{customer_id}/consents/{channel}")),
    ("sales", ("POST", "/api/v1/customers/{customer_id}/merge")),
    ("sales", ("POST", "/api/v1/customers/import")),
    ("manager", ("DELETE", "/api/v1/customers/{customer_id}/personal-data")),
    ("manager", ("PUT", "/api/v1/custom-fields/{name}")),
    ("marketing", ("PATCH", "/api/v1/customers/{customer_id}")),
]


async def test_roles_that_must_not_do_it_are_refused(api: Api) -> None:
    for role, (method, path) in REFUSED:
        response = await api.client.request(
            method, concrete(path), headers=api.auth(roles=[role])
        )

        assert response.status_code == 403, (role, method, path, response.text)


async def test_a_viewer_reads_but_a_sales_rep_logs_the_interaction(api: Api) -> None:
    customer_id = await api.register()
    path = f"/api/v1/customers/{customer_id}/interactions"
    call = {"channel": "phone", "direction": "inbound"}

    viewer = await api.client.post(path, json=call, headers=api.auth(roles=["viewer"]))
    sales = await api.client.post(path, json=call, headers=api.auth(roles=["sales"]))
    read = await api.client.get(
        f"/api/v1/customers/{customer_id}", headers=api.auth(roles=["viewer"])
    )

    assert viewer.status_code == 403
    assert sales.status_code == 201
    assert read.status_code == 200
