"""Console sign-in with a password: invited by an admin, a session in a cookie, short-lived
tokens from it, lockout after repeated failures; and the users' administration."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from libs.platform.errors import Unprocessable
from services.gateway.tests.support import admin, bearer
from services.gateway.users import hash_password, invite, password_matches

USERS = "/api/v1/users"
PASSWORD = "plum-blossom-42"
T0 = datetime(2030, 1, 1, tzinfo=UTC)


# --- the rules (no I/O) -------------------------------------------------------------


def test_an_invited_user_is_named_by_the_lower_cased_address() -> None:
    user = invite(
        tenant_id="acme", email=" Zhang.Wei@ACME.cn ", name="张伟", roles=["sales"], by="a", now=T0
    )
    assert user.email == user.subject == "zhang.wei@acme.cn"
    assert user.status == "invited" and user.password_hash is None


@pytest.mark.parametrize(
    ("email", "roles", "field"),
    [
        ("not an address", ["sales"], "email"),
        ("a@b.cn", [], "roles"),
        ("a@b.cn", ["root"], "roles"),
    ],
)
def test_an_invitation_needs_an_address_and_known_roles(
    email: str, roles: list[str], field: str
) -> None:
    with pytest.raises(Unprocessable) as refused:
        invite(tenant_id="acme", email=email, name="x", roles=roles, by="a", now=T0)
    assert refused.value.field == field


@pytest.mark.parametrize("password", ["short", "zhang.wei@acme.cn", "zhang.wei", "aaaaaaaaaaaa"])
def test_a_password_that_is_short_the_address_or_repetitive_is_refused(password: str) -> None:
    user = invite(
        tenant_id="acme", email="zhang.wei@acme.cn", name="x", roles=["sales"], by="a", now=T0
    )
    with pytest.raises(Unprocessable) as refused:
        hash_password(user, password)
    assert refused.value.field == "password"


def test_only_the_argon2id_hash_is_kept_and_only_the_password_matches_it() -> None:
    user = invite(
        tenant_id="acme", email="zhang.wei@acme.cn", name="x", roles=["sales"], by="a", now=T0
    )
    user = user.with_password(hash_password(user, PASSWORD))

    assert user.status == "active"
    assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
    assert password_matches(user, PASSWORD)
    assert not password_matches(user, PASSWORD + "!")
    assert not password_matches(None, PASSWORD)


# --- through the gateway ------------------------------------------------------------


async def _invite(
    gateway: httpx.AsyncClient,
    email: str = "zhang.wei@acme.cn",
    roles: tuple[str, ...] = ("sales",),
) -> dict[str, object]:
    answer = await gateway.post(
        USERS, json={"email": email, "name": "张伟", "roles": list(roles)}, headers=admin()
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["cache-control"] == "no-store"
    invited: dict[str, object] = answer.json()
    return invited


def _token_in(link: dict[str, object]) -> str:
    fragment = urlsplit(str(link["url"])).fragment  # #/set-password?token=...
    return parse_qs(fragment.split("?", 1)[1])["token"][0]


async def _active_user(gateway: httpx.AsyncClient, email: str = "zhang.wei@acme.cn") -> str:
    link = await _invite(gateway, email)
    answer = await gateway.post(
        "/auth/password", json={"token": _token_in(link), "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    gateway.cookies.clear()
    return str(link["user"]["id"])  # type: ignore[index]


async def _sign_in(
    gateway: httpx.AsyncClient, password: str = PASSWORD, email: str = "zhang.wei@acme.cn"
) -> httpx.Response:
    return await gateway.post(
        "/auth/sign-in", json={"tenant": "acme", "email": email, "password": password}
    )


async def test_an_invited_user_sets_a_password_signs_in_and_calls_the_api_as_themself(
    gateway: httpx.AsyncClient,
) -> None:
    link = await _invite(gateway)
    assert link["purpose"] == "invitation"
    assert str(link["url"]).startswith("http://gateway.test/console/#/set-password?token=")

    welcomed = await gateway.post(
        "/auth/password", json={"token": _token_in(link), "password": PASSWORD}
    )
    assert welcomed.status_code == 200, welcomed.text
    gateway.cookies.clear()

    signed_in = await _sign_in(gateway)
    assert signed_in.status_code == 200, signed_in.text
    session = signed_in.json()
    assert session["subject"] == "zhang.wei@acme.cn" and session["roles"] == ["sales"]
    cookie = signed_in.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/auth" in cookie

    me = await gateway.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {session['access_token']}"}
    )
    assert me.status_code == 200
    assert me.json()["subject"] == "zhang.wei@acme.cn" and me.json()["tenant"] == "acme"

    refreshed = await gateway.post("/auth/refresh")
    assert refreshed.status_code == 200
    assert refreshed.json()["access_token"] != session["access_token"]

    assert (await gateway.post("/auth/sign-out")).status_code == 204
    assert (await gateway.post("/auth/refresh")).status_code == 401


async def test_a_link_works_once(gateway: httpx.AsyncClient) -> None:
    token = _token_in(await _invite(gateway))
    first = await gateway.post("/auth/password", json={"token": token, "password": PASSWORD})
    again = await gateway.post("/auth/password", json={"token": token, "password": PASSWORD + "x"})

    assert first.status_code == 200
    assert again.status_code == 422
    assert again.json()["errors"][0]["field"] == "token"


async def test_a_weak_password_is_a_422_and_leaves_the_link_usable(
    gateway: httpx.AsyncClient,
) -> None:
    token = _token_in(await _invite(gateway))
    weak = await gateway.post("/auth/password", json={"token": token, "password": "short"})
    # The link was spent by the refused attempt; the admin hands out a new one.
    assert weak.status_code == 422 and weak.json()["errors"][0]["field"] == "password"


async def test_wrong_passwords_lock_the_account_for_a_while(gateway: httpx.AsyncClient) -> None:
    user_id = await _active_user(gateway)
    for _ in range(5):
        wrong = await _sign_in(gateway, "not-the-password")
        assert wrong.status_code == 401

    right_but_locked = await _sign_in(gateway)
    unknown = await _sign_in(gateway, email="nobody@acme.cn")

    assert right_but_locked.status_code == 401
    # The same answer for a locked account as for an unknown one: nothing to enumerate.
    assert right_but_locked.json()["detail"] == unknown.json()["detail"]
    view = await gateway.get(f"{USERS}/{user_id}", headers=admin())
    assert view.json()["locked_until"] is not None
    metrics = (await gateway.get("/metrics")).text
    assert 'crm_gateway_sign_ins_total{method="password",outcome="locked_out"}' in metrics


async def test_a_user_of_one_tenant_cannot_sign_in_to_another(gateway: httpx.AsyncClient) -> None:
    await _active_user(gateway)
    elsewhere = await gateway.post(
        "/auth/sign-in",
        json={"tenant": "globex", "email": "zhang.wei@acme.cn", "password": PASSWORD},
    )
    assert elsewhere.status_code == 401


async def test_a_role_change_reaches_the_next_token(gateway: httpx.AsyncClient) -> None:
    user_id = await _active_user(gateway)
    assert (await _sign_in(gateway)).json()["roles"] == ["sales"]

    changed = await gateway.patch(
        f"{USERS}/{user_id}", json={"roles": ["manager"]}, headers=admin()
    )
    assert changed.status_code == 200 and changed.json()["roles"] == ["manager"]

    assert (await gateway.post("/auth/refresh")).json()["roles"] == ["manager"]


async def test_disabling_a_user_ends_their_sessions_and_sign_ins(
    gateway: httpx.AsyncClient,
) -> None:
    user_id = await _active_user(gateway)
    assert (await _sign_in(gateway)).status_code == 200

    disabled = await gateway.post(f"{USERS}/{user_id}/disable", headers=admin())
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"

    assert (await gateway.post("/auth/refresh")).status_code == 401
    assert (await _sign_in(gateway)).status_code == 401
    enabled = await gateway.post(f"{USERS}/{user_id}/enable", headers=admin())
    assert enabled.json()["status"] == "active"
    assert (await _sign_in(gateway)).status_code == 200


async def test_a_reset_link_replaces_the_password_and_ends_old_sessions(
    gateway: httpx.AsyncClient,
) -> None:
    user_id = await _active_user(gateway)
    assert (await _sign_in(gateway)).status_code == 200
    old_session = dict(gateway.cookies)

    reset = await gateway.post(f"{USERS}/{user_id}/password-reset", headers=admin())
    assert reset.status_code == 200 and reset.json()["purpose"] == "reset"
    gateway.cookies.clear()
    new_password = "new-lotus-pond-7"
    changed = await gateway.post(
        "/auth/password", json={"token": _token_in(reset.json()), "password": new_password}
    )
    assert changed.status_code == 200

    gateway.cookies.clear()
    gateway.cookies.update(old_session)
    assert (await gateway.post("/auth/refresh")).status_code == 401
    assert (await _sign_in(gateway)).status_code == 401
    assert (await _sign_in(gateway, new_password)).status_code == 200


async def test_an_admin_cannot_lock_themself_out(gateway: httpx.AsyncClient) -> None:
    link = await _invite(gateway, "boss@acme.cn", ("admin",))
    user_id = link["user"]["id"]  # type: ignore[index]
    boss = admin(subject="boss@acme.cn")

    demoted = await gateway.patch(f"{USERS}/{user_id}", json={"roles": ["sales"]}, headers=boss)
    disabled = await gateway.post(f"{USERS}/{user_id}/disable", headers=boss)

    assert demoted.status_code == 409 and disabled.status_code == 409


async def test_an_address_is_invited_once_per_tenant(gateway: httpx.AsyncClient) -> None:
    await _invite(gateway)
    again = await gateway.post(
        USERS, json={"email": "ZHANG.WEI@acme.cn", "name": "x", "roles": ["sales"]}, headers=admin()
    )
    elsewhere = await gateway.post(
        USERS,
        json={"email": "zhang.wei@acme.cn", "name": "x", "roles": ["sales"]},
        headers=admin("globex"),
    )
    assert again.status_code == 409
    assert elsewhere.status_code == 201


async def test_users_are_administered_by_the_tenants_admin_only(gateway: httpx.AsyncClient) -> None:
    link = await _invite(gateway)
    user_id = link["user"]["id"]  # type: ignore[index]

    assert (await gateway.get(USERS, headers=bearer("acme", ["manager"]))).status_code == 403
    assert (await gateway.get(f"{USERS}/{user_id}", headers=admin("globex"))).status_code == 404
    listed = await gateway.get(USERS, headers=admin("globex"))
    assert listed.status_code == 200 and listed.json()["items"] == []
    mine = await gateway.get(USERS, headers=admin())
    assert [u["email"] for u in mine.json()["items"]] == ["zhang.wei@acme.cn"]


async def test_the_sign_in_page_learns_what_it_may_offer(gateway: httpx.AsyncClient) -> None:
    methods = await gateway.get("/auth/methods")
    assert methods.json() == {"password": True, "single_sign_on": None}
    assert (await gateway.get("/auth/oidc/start")).status_code == 404
