"""Paths that hold their own credential (a survey link's one-time token) pass the gateway
without a login; every other path still needs one."""

from __future__ import annotations

import httpx

from services.bootstrap import gateway_routing

TOKEN = "k" * 43


def test_only_declared_link_paths_hold_their_own_credential() -> None:
    routing = gateway_routing()
    for path in (f"/api/v1/surveys/{TOKEN}", f"/api/v1/surveys/{TOKEN}/answer"):
        route = routing.route_for(path)
        assert route is not None and route.credential_in_path, path
    for path in ("/api/v1/tickets", "/api/v1/customers/c-1", "/api/v1/surveys/short"):
        route = routing.route_for(path)
        assert route is None or not route.credential_in_path, path


async def test_a_link_path_reaches_its_service_without_a_login(
    gateway: httpx.AsyncClient,
) -> None:
    anonymous = await gateway.post(f"/api/v1/surveys/{TOKEN}/answer", json={"score": 9})
    guarded = await gateway.get("/api/v1/tickets")

    # The stand-in behind "tickets" serves no survey: its own 404, not the gateway's 401.
    assert (anonymous.status_code, anonymous.json()["detail"]) == (404, "Not Found")
    assert guarded.status_code == 401
