"""The gateway's side of the web console: its files, the front door, /api/v1/me.
(The console itself is tested in a browser: tests/test_console.py.)"""

from __future__ import annotations

import httpx

from libs.auth.roles import PERMISSIONS, Role
from services.gateway.tests.support import bearer


async def test_the_front_door_leads_a_browser_to_the_console(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/", headers={"Accept": "text/html,*/*"})

    assert response.status_code == 307
    assert response.headers["location"] == "/console/"
    assert (await gateway.get("/")).json()["console"] == "/console/"


async def test_the_console_is_served_with_a_policy_allowing_only_its_own_files(
    gateway: httpx.AsyncClient,
) -> None:
    page = await gateway.get("/console/")
    script = await gateway.get("/console/js/main.js")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/main.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    # The files beside the console (the gateway's own code) are not served.
    assert (await gateway.get("/console/%2e%2e/console.py")).status_code == 404


async def test_me_names_the_caller_and_exactly_the_permissions_its_roles_grant(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/api/v1/me", headers=bearer("acme", ["viewer"], "auditor"))

    assert response.status_code == 200
    me = response.json()
    assert me["subject"] == "auditor" and me["tenant"] == "acme" and me["via"] == "jwt"
    assert me["roles"] == ["viewer"]
    assert set(me["permissions"]) == {
        name for name, roles in PERMISSIONS.items() if Role.VIEWER in roles
    }
    assert "customers:write" not in me["permissions"]
    # A role the platform does not know grants nothing, yet the caller may ask.
    unknown = await gateway.get("/api/v1/me", headers=bearer("acme", ["guest"]))
    assert unknown.status_code == 200 and unknown.json()["permissions"] == []


async def test_me_without_a_token_is_a_401_problem(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/me")

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
