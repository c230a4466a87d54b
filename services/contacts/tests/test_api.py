"""The contacts API over HTTP, against real PostgreSQL and the real broker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
from cloudevents.core.bindings import kafka as ce_kafka
from pydantic import SecretStr

from libs.events.kafka import KafkaSettings
from services.contacts.app import create_app
from services.contacts.settings import Settings
from services.contacts.tests.conftest import SECRET, Api, read_topic
from services.contacts.tests.test_import import finished
from testing.problems import problem_of

CUSTOMERS = "/api/v1/customers"


# --- registering and reading ---------------------------------------------------------


async def test_a_registered_customer_reads_back_normalised_with_its_version(api: Api) -> None:
    response = await api.client.post(
        CUSTOMERS,
        json={
            "kind": "person",
            "name": "  张伟 ",
            "email": "Zhang.Wei@Example.COM",
            "phone": "138 0013 8000",
            "birthday": "1990-05-01",
            "tags": ["VIP ", "vip", "b2c"],
        },
        headers=api.auth(),
    )

    assert response.status_code == 201, response.text
    customer_id = response.json()["id"]
    assert response.json()["version"] == 1
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"{CUSTOMERS}/{customer_id}"
    got = await api.client.get(f"{CUSTOMERS}/{customer_id}", headers=api.auth())
    assert got.headers["ETag"] == '"1"'
    customer = got.json()
    assert customer["name"] == "张伟"
    assert customer["email"] == "Zhang.Wei@example.com"
    assert customer["phone"] == "+8613800138000"
    # Stored as E.164, written out by the country's plan for a reader.
    assert customer["phone_international"] == "+86 138 0013 8000"
    listed = await api.client.get(CUSTOMERS, params={"q": "张伟"}, headers=api.auth())
    assert [c["phone_international"] for c in listed.json()["items"]] == ["+86 138 0013 8000"]
    assert customer["tags"] == ["b2c", "vip"]
    assert customer["birthday"] == "1990-05-01"


async def test_every_endpoint_needs_a_token_and_the_role_for_it(api: Api) -> None:
    customer_id = await api.register()

    anonymous = await api.client.get(f"{CUSTOMERS}/{customer_id}")
    viewer_write = await api.client.patch(
        f"{CUSTOMERS}/{customer_id}", json={"name": "x"}, headers=api.auth(roles=["viewer"])
    )
    sales_merge = await api.client.post(
        f"{CUSTOMERS}/{customer_id}/merge",
        json={"duplicate_id": customer_id},
        headers=api.auth(roles=["sales"]),
    )
    manager_erase = await api.client.delete(
        f"{CUSTOMERS}/{customer_id}/personal-data", headers=api.auth(roles=["manager"])
    )
    viewer_read = await api.client.get(
        f"{CUSTOMERS}/{customer_id}", headers=api.auth(roles=["viewer"])
    )

    assert anonymous.status_code == 401
    assert viewer_write.status_code == 403
    assert sales_merge.status_code == 403
    assert manager_erase.status_code == 403
    assert viewer_read.status_code == 200


async def test_bad_input_is_a_422_naming_the_field_never_a_500(api: Api) -> None:
    customer_id = await api.register()
    cases: list[tuple[str, str, dict[str, Any] | None, str]] = [
        ("POST", CUSTOMERS, {"kind": "person", "name": "A", "email": "not-an-email"}, "email"),
        ("POST", CUSTOMERS, {"kind": "person", "name": "A", "phone": "12"}, "phone"),
        ("POST", CUSTOMERS, {"kind": "robot", "name": "A"}, "kind"),
        ("POST", CUSTOMERS, {"kind": "person", "name": "   "}, "name"),
        ("POST", CUSTOMERS, {"kind": "person", "name": "A\u0000B"}, "name"),
        ("POST", CUSTOMERS, {"kind": "person", "name": "A", "nmae": "typo"}, "nmae"),
        ("POST", CUSTOMERS, {"kind": "person", "name": "A", "birthday": "2999-01-01"}, "birthday"),
        ("POST", CUSTOMERS, {"kind": "person", "name": "A", "attributes": {"x": 1}},
         "attributes.x"),
        ("PATCH", f"{CUSTOMERS}/{customer_id}", {"name": None}, "name"),
        ("POST", f"{CUSTOMERS}/{customer_id}/interactions",
         {"channel": "fax", "direction": "inbound"}, "channel"),
        ("POST", f"{CUSTOMERS}/{customer_id}/interactions",
         {"channel": "phone", "direction": "inbound", "summary": "a\u0000"}, "summary"),
        ("GET", f"{CUSTOMERS}?cursor=not-a-cursor", None, "cursor"),
        ("GET", f"{CUSTOMERS}?created_from=2024-01-01T00:00:00", None, "created_from"),
        ("GET", f"{CUSTOMERS}?limit=100000", None, "limit"),
        ("GET", f"{CUSTOMERS}/bad%00id", None, "customer_id"),
        ("GET", f"{CUSTOMERS}?q=a%00b", None, "q"),
        ("GET", f"{CUSTOMERS}?owner=a%00b", None, "owner"),
        ("GET", f"{CUSTOMERS}?tag=a%00b", None, "tag"),
        ("POST", f"{CUSTOMERS}/{customer_id}/merge", {"duplicate_id": "x\u0000"},
         "duplicate_id"),
        ("PATCH", f"{CUSTOMERS}/{customer_id}", {"attributes": {"a\u0000": 1}},
         "attributes.a\x00"),
    ]
    for method, url, body, field in cases:
        response = await api.client.request(method, url, json=body, headers=api.auth())

        assert response.status_code == 422, (url, body, response.text)
        fields = [issue["field"] for issue in response.json()["errors"]]
        assert field in fields, (url, body, fields)


async def test_an_unknown_customer_is_a_404(api: Api) -> None:
    response = await api.client.get(f"{CUSTOMERS}/no-such-customer", headers=api.auth())

    assert response.status_code == 404
    assert response.json()["customer_id"] == "no-such-customer"


# --- duplicates ----------------------------------------------------------------------


async def test_a_second_registration_with_the_same_email_is_a_409_naming_the_first(
    api: Api,
) -> None:
    first = await api.register(name="王芳", email="wang.fang@example.com")

    again = await api.client.post(
        CUSTOMERS,
        json={"kind": "person", "name": "Fang Wang", "email": "wang.fang@EXAMPLE.com"},
        headers=api.auth(),
    )
    anyway = await api.client.post(
        CUSTOMERS,
        json={"kind": "person", "name": "Fang Wang", "email": "wang.fang@example.com",
              "register_anyway": True},
        headers=api.auth(),
    )

    assert again.status_code == 409
    assert again.json()["existing_id"] == first
    assert again.json()["field"] == "email"
    assert anyway.status_code == 201
    assert anyway.json()["id"] != first


async def test_the_same_phone_written_differently_is_a_duplicate(api: Api) -> None:
    first = await api.register(phone="+86 138-0013-8000")

    again = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "B", "phone": "13800138000"},
        headers=api.auth(),
    )

    assert again.status_code == 409
    assert problem_of(again) | {"detail": ""} == {
        "detail": "", "existing_id": first, "field": "phone"
    }


async def test_the_same_email_in_another_tenant_is_not_a_duplicate(api: Api) -> None:
    await api.register(tenant="acme", email="shared@example.com")

    assert await api.register(tenant="globex", email="shared@example.com")


async def test_of_concurrent_registrations_with_one_email_exactly_one_wins(api: Api) -> None:
    async def register(i: int) -> Any:
        return await api.client.post(
            CUSTOMERS,
            json={"kind": "person", "name": f"Racer {i}", "email": "race@example.com"},
            headers=api.auth(),
        )

    responses = await asyncio.gather(*(register(i) for i in range(12)))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 11
    [winner] = [r.json()["id"] for r in responses if r.status_code == 201]
    assert {r.json()["existing_id"] for r in responses if r.status_code == 409} == {winner}


# --- changing ------------------------------------------------------------------------


async def test_a_patch_with_a_stale_if_match_is_a_412_and_changes_nothing(api: Api) -> None:
    customer_id = await api.register(name="Li Lei", email="li@example.com")
    url = f"{CUSTOMERS}/{customer_id}"

    fresh = await api.client.patch(
        url, json={"name": "Li Lei Jr"}, headers={**api.auth(), "If-Match": '"1"'}
    )
    stale = await api.client.patch(
        url, json={"name": "Someone Else"}, headers={**api.auth(), "If-Match": '"1"'}
    )

    assert fresh.status_code == 200
    assert fresh.json() == {"id": customer_id, "version": 2}
    assert fresh.headers["ETag"] == '"2"'
    assert stale.status_code == 412
    assert stale.json()["current_version"] == 2
    assert (await api.get(customer_id))["name"] == "Li Lei Jr"


async def test_concurrent_patches_without_if_match_all_land(api: Api) -> None:
    customer_id = await api.register()

    responses = await asyncio.gather(
        *(
            api.client.post(
                f"{CUSTOMERS}/{customer_id}/tags", json={"tags": [f"t{i}"]}, headers=api.auth()
            )
            for i in range(6)
        )
    )

    assert {r.status_code for r in responses} == {200}
    customer = await api.get(customer_id)
    assert customer["tags"] == [f"t{i}" for i in range(6)]
    assert customer["version"] == 7


async def test_a_patch_follows_merge_patch_rules(api: Api) -> None:
    customer_id = await api.register(email="a@example.com", phone="13800138000")

    response = await api.client.patch(
        f"{CUSTOMERS}/{customer_id}", json={"email": None, "phone": "13900139000"},
        headers=api.auth(),
    )

    customer = await api.get(customer_id)
    assert response.status_code == 200
    assert customer["email"] is None
    assert customer["phone"] == "+8613900139000"
    # The freed email no longer makes a duplicate; the new phone does.
    assert await api.register(email="a@example.com")
    taken = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "X", "phone": "13900139000"},
        headers=api.auth(),
    )
    assert taken.json()["existing_id"] == customer_id


async def test_tags_owner_key_contacts_interactions_and_consent(api: Api) -> None:
    company = await api.register(kind="company", name="星辰科技")
    person = await api.register(name="赵敏", company_id=company)
    other = await api.register(name="周芷若", company_id=company)
    auth = api.auth()

    tagged = await api.client.post(
        f"{CUSTOMERS}/{person}/tags", json={"tags": ["VIP", "beijing"]}, headers=auth
    )
    untagged = await api.client.delete(f"{CUSTOMERS}/{person}/tags/beijing", headers=auth)
    owner = await api.client.put(
        f"{CUSTOMERS}/{person}/owner", json={"owner_id": "sales-7"}, headers=auth
    )
    key = await api.client.put(
        f"{CUSTOMERS}/{company}/key-contacts/purchasing", json={"contact_id": person},
        headers=auth,
    )
    key_changed = await api.client.put(
        f"{CUSTOMERS}/{company}/key-contacts/purchasing", json={"contact_id": other},
        headers=auth,
    )
    key_on_person = await api.client.put(
        f"{CUSTOMERS}/{person}/key-contacts/purchasing", json={"contact_id": other},
        headers=auth,
    )
    call = {"interaction_id": "call-1", "channel": "phone", "direction": "outbound",
            "summary": "renewal talk", "occurred_at": "2024-03-01T09:30:00+08:00"}
    logged = await api.client.post(f"{CUSTOMERS}/{person}/interactions", json=call, headers=auth)
    logged_again = await api.client.post(
        f"{CUSTOMERS}/{person}/interactions", json=call, headers=auth
    )
    consent = await api.client.put(
        f"{CUSTOMERS}/{person}/consents/email",
        json={"granted": True, "source": "web form"}, headers=auth,
    )

    assert [r.status_code for r in (tagged, untagged, owner, key, key_changed)] == [200] * 5
    assert key_on_person.status_code == 422
    assert (logged.status_code, logged_again.status_code) == (201, 200)
    document = (await api.client.get("/openapi.json")).json()
    answers = document["paths"]["/api/v1/customers/{customer_id}/interactions"]["post"]["responses"]
    assert {"200", "201"} <= set(answers)  # the replay's 200 is documented
    assert logged.json()["version"] == logged_again.json()["version"]
    assert consent.status_code == 200
    customer = await api.get(person)
    assert customer["tags"] == ["vip"]
    assert customer["owner_id"] == "sales-7"
    assert customer["interaction_count"] == 1
    assert customer["last_interaction_at"] == "2024-03-01T01:30:00+00:00"
    assert customer["consents"]["email"]["granted"] is True
    assert customer["consents"]["email"]["source"] == "web form"
    assert (await api.get(company))["key_contacts"] == {"purchasing": other}
    history = await api.client.get(f"{CUSTOMERS}/{company}/history", headers=auth)
    key_events = [e for e in history.json()["events"] if "key_contact" in e["type"]]
    assert [e["data"]["previous_contact_id"] for e in key_events] == [None, person]


# --- custom fields -------------------------------------------------------------------


async def test_attributes_are_checked_against_the_tenants_custom_fields(api: Api) -> None:
    auth = api.auth()
    defined = await api.client.put(
        "/api/v1/custom-fields/vip_level",
        json={"type": "choice", "required": True, "choices": ["Gold", "Silver"]}, headers=auth,
    )
    redefined = await api.client.put(
        "/api/v1/custom-fields/vip_level",
        json={"type": "choice", "required": True, "choices": ["Gold", "Silver"]}, headers=auth,
    )
    retyped = await api.client.put(
        "/api/v1/custom-fields/vip_level", json={"type": "number"}, headers=auth
    )
    sales_defines = await api.client.put(
        "/api/v1/custom-fields/other", json={"type": "text"}, headers=api.auth(roles=["sales"])
    )
    missing = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "A"}, headers=auth
    )
    wrong = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "A", "attributes": {"vip_level": "Bronze"}},
        headers=auth,
    )
    right = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "A", "attributes": {"vip_level": "gold"}},
        headers=auth,
    )
    listed = await api.client.get("/api/v1/custom-fields", headers=auth)

    assert (defined.status_code, redefined.status_code) == (201, 200)
    assert retyped.status_code == 409
    assert sales_defines.status_code == 403
    assert missing.status_code == 422
    assert missing.json()["errors"][0]["field"] == "attributes.vip_level"
    assert wrong.status_code == 422
    assert right.status_code == 201
    assert (await api.get(right.json()["id"]))["attributes"] == {"vip_level": "Gold"}
    assert listed.json() == [
        {"name": "vip_level", "type": "choice", "required": True, "choices": ["Gold", "Silver"]}
    ]


# --- search --------------------------------------------------------------------------


async def test_search_finds_by_name_pinyin_initials_email_and_phone(api: Api) -> None:
    zhang = await api.register(name="张伟", email="zw@corp.example", phone="13800138000")
    await api.register(name="李娜", email="lina@example.com")

    def ids(items: list[dict[str, Any]]) -> list[str]:
        return [c["id"] for c in items]

    assert ids(await api.search(q="张伟")) == [zhang]
    assert ids(await api.search(q="zhang wei")) == [zhang]
    assert ids(await api.search(q="ZW")) == [zhang]
    assert ids(await api.search(q="corp.example")) == [zhang]
    assert ids(await api.search(q="138-0013-8000")) == [zhang]
    assert ids(await api.search(q="100%_")) == []


async def test_filters_and_cursor_pages_in_a_stable_order(api: Api) -> None:
    ids = [
        await api.register(name=f"Customer {i}", owner_id="sales-1" if i % 2 else None,
                           tags=["vip"] if i < 3 else [],
                           registered_at=f"2020-01-0{i + 1}T00:00:00+00:00")
        for i in range(5)
    ]
    company = await api.register(kind="company", name="ACME Ltd")

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "kind": "person"}
        if cursor:
            params["cursor"] = cursor
        page = await api.client.get(CUSTOMERS, params=params, headers=api.auth())
        pages.append([c["id"] for c in page.json()["items"]])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break

    assert pages == [[ids[4], ids[3]], [ids[2], ids[1]], [ids[0]]]
    assert [c["id"] for c in await api.search(tag="VIP")] == [ids[2], ids[1], ids[0]]
    assert [c["id"] for c in await api.search(owner="sales-1")] == [ids[3], ids[1]]
    assert [c["id"] for c in await api.search(kind="company")] == [company]
    window = await api.search(
        created_from="2020-01-02T00:00:00Z", created_to="2020-01-04T00:00:00Z"
    )
    assert [c["id"] for c in window] == [ids[2], ids[1]]


# --- merging -------------------------------------------------------------------------


async def test_a_merged_duplicate_resolves_to_the_survivor_with_the_union_of_history(
    api: Api,
) -> None:
    survivor = await api.register(name="王芳", email="fang@example.com", tags=["vip"])
    duplicate = await api.register(
        name="Wang Fang", phone="13800138000", tags=["b2b"], register_anyway=True
    )
    await api.client.post(
        f"{CUSTOMERS}/{duplicate}/interactions",
        json={"channel": "wechat", "direction": "inbound", "summary": "asked for a quote"},
        headers=api.auth(),
    )
    auth = api.auth(roles=["manager"])

    merged = await api.client.post(
        f"{CUSTOMERS}/{survivor}/merge", json={"duplicate_id": duplicate}, headers=auth
    )
    retried = await api.client.post(
        f"{CUSTOMERS}/{survivor}/merge", json={"duplicate_id": duplicate}, headers=auth
    )

    assert merged.status_code == 200
    assert merged.json() == {"id": survivor, "version": 2}
    assert retried.json() == {"id": survivor, "version": 2}
    via_duplicate = await api.client.get(f"{CUSTOMERS}/{duplicate}", headers=auth)
    assert via_duplicate.status_code == 200
    assert via_duplicate.json()["id"] == survivor
    assert via_duplicate.headers["Content-Location"] == f"{CUSTOMERS}/{survivor}"
    customer = via_duplicate.json()
    assert customer["phone"] == "+8613800138000"
    assert customer["tags"] == ["b2b", "vip"]
    assert customer["interaction_count"] == 1
    assert customer["merged_from"] == [duplicate]
    history = (await api.client.get(f"{CUSTOMERS}/{duplicate}/history", headers=auth)).json()
    assert history["customer_id"] == survivor
    assert {e["customer_id"] for e in history["events"]} == {survivor, duplicate}
    assert any(e["type"].endswith("interaction_logged.v1") for e in history["events"])
    assert [c["id"] for c in await api.search(q="wang fang")] == [survivor]
    write_to_duplicate = await api.client.patch(
        f"{CUSTOMERS}/{duplicate}", json={"name": "x"}, headers=auth
    )
    assert write_to_duplicate.status_code == 409
    assert write_to_duplicate.json()["survivor_id"] == survivor
    again = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "Y", "phone": "13800138000"}, headers=auth
    )
    assert again.json()["existing_id"] == survivor


async def test_a_merge_into_itself_or_across_kinds_is_a_422(api: Api) -> None:
    person = await api.register()
    company = await api.register(kind="company", name="ACME")
    auth = api.auth()

    itself = await api.client.post(
        f"{CUSTOMERS}/{person}/merge", json={"duplicate_id": person}, headers=auth
    )
    kinds = await api.client.post(
        f"{CUSTOMERS}/{person}/merge", json={"duplicate_id": company}, headers=auth
    )

    assert itself.status_code == 422
    assert kinds.status_code == 422
    assert kinds.json()["errors"][0]["field"] == "duplicate_id"


# --- tenants -------------------------------------------------------------------------


async def test_another_tenants_customer_is_a_404_on_every_path(api: Api) -> None:
    theirs = await api.register(tenant="acme", name="秘密客户", email="secret@acme.example")
    mine = await api.register(tenant="globex", name="Mine")
    auth = api.auth(tenant="globex")
    paths: list[tuple[str, str, dict[str, Any] | None]] = [
        ("GET", f"{CUSTOMERS}/{theirs}", None),
        ("PATCH", f"{CUSTOMERS}/{theirs}", {"name": "Hijacked"}),
        ("POST", f"{CUSTOMERS}/{theirs}/tags", {"tags": ["x"]}),
        ("DELETE", f"{CUSTOMERS}/{theirs}/tags/x", None),
        ("PUT", f"{CUSTOMERS}/{theirs}/owner", {"owner_id": "me"}),
        ("PUT", f"{CUSTOMERS}/{theirs}/key-contacts/boss", {"contact_id": mine}),
        ("POST", f"{CUSTOMERS}/{theirs}/interactions", {"channel": "sms", "direction": "inbound"}),
        ("PUT", f"{CUSTOMERS}/{theirs}/consents/sms", {"granted": True, "source": "x"}),
        ("POST", f"{CUSTOMERS}/{theirs}/merge", {"duplicate_id": mine}),
        ("POST", f"{CUSTOMERS}/{mine}/merge", {"duplicate_id": theirs}),
        ("GET", f"{CUSTOMERS}/{theirs}/history", None),
        ("GET", f"{CUSTOMERS}/{theirs}/export", None),
        ("DELETE", f"{CUSTOMERS}/{theirs}/personal-data", None),
    ]
    for method, url, body in paths:
        response = await api.client.request(method, url, json=body, headers=auth)

        assert response.status_code == 404, (method, url, response.text)

    assert await api.search(tenant="globex", q="secret") == []
    assert await api.search(tenant="globex", q="mi mi") == []
    assert [c["id"] for c in await api.search(tenant="globex")] == [mine]
    person = await api.client.post(
        CUSTOMERS, json={"kind": "person", "name": "P", "company_id": theirs}, headers=auth
    )
    assert person.status_code == 404
    assert (await api.get(theirs, tenant="acme"))["name"] == "秘密客户"


# --- events --------------------------------------------------------------------------


async def test_a_stock_cloudevents_sdk_reads_what_the_relay_publishes(
    api: Api, kafka: KafkaSettings
) -> None:
    response = await api.client.post(
        CUSTOMERS,
        json={"kind": "person", "name": "陈静", "email": "chen@example.com"},
        headers={**api.auth(), "X-Correlation-ID": "req-42"},
    )
    customer_id = response.json()["id"]
    await api.client.post(
        f"{CUSTOMERS}/{customer_id}/tags", json={"tags": ["vip"]}, headers=api.auth()
    )

    published = await read_topic(kafka, lambda seen: len(seen) >= 2)

    assert [p.key for p in published] == [customer_id.encode()] * 2
    messages = [
        ce_kafka.from_binary_event(ce_kafka.KafkaMessage(p.headers, p.key, p.value))
        for p in published
    ]
    registered, tagged = messages
    assert registered.get_type() == "crm.contacts.customer_registered.v1"
    assert registered.get_source() == "/crm/contacts"
    assert registered.get_subject() == customer_id
    assert registered.get_extension("tenantid") == "acme"
    assert registered.get_extension("correlationid") == "req-42"
    assert registered.get_extension("sequence") == "1"
    data = registered.get_data()
    assert isinstance(data, dict)
    assert data["name"] == "陈静"  # subscribers get it in clear
    assert data["email"] == "chen@example.com"
    assert tagged.get_type() == "crm.contacts.customer_tagged.v1"
    assert tagged.get_data() == {"customer_id": customer_id, "tag": "vip"}


# --- the embedded default ------------------------------------------------------------


async def test_the_same_api_runs_on_the_embedded_sqlite_default(
    tmp_path: Path, kafka: KafkaSettings
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'contacts.db'}",
        kafka_bootstrap_servers=kafka.bootstrap_servers,
        kafka_partitions=kafka.partitions,
        jwt_secret=SecretStr(SECRET),
        log_level="WARNING",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://contacts") as client:
            api = Api(client, settings)
            survivor = await api.register(name="张伟", email="zw@example.com", tags=["vip"])
            duplicate = await api.register(name="Zhang Wei", phone="13800138000")
            taken = await client.post(
                CUSTOMERS, json={"kind": "person", "name": "X", "email": "zw@example.com"},
                headers=api.auth(),
            )
            merged = await client.post(
                f"{CUSTOMERS}/{survivor}/merge", json={"duplicate_id": duplicate},
                headers=api.auth(),
            )
            imported = await client.post(
                f"{CUSTOMERS}/import",
                files={"file": ("c.csv", "name,email\n李娜,lina@example.com\n".encode("gbk"))},
                headers=api.auth(),
            )
            import_job = await finished(api, imported.headers["Location"])
            erased = await client.delete(
                f"{CUSTOMERS}/{survivor}/personal-data", headers=api.auth()
            )

            assert taken.json()["existing_id"] == survivor
            assert merged.status_code == 200
            assert import_job["report"]["created"] == 1
            assert [c["name"] for c in await api.search(q="ln")] == ["李娜"]
            assert [c["name"] for c in await api.search(tag="vip")] == []
            assert sorted(erased.json()["erased_ids"]) == sorted([survivor, duplicate])
            assert (await api.get(duplicate))["name"] == ""


async def test_an_interaction_id_beyond_latin1_is_logged_with_an_encoded_location(
    api: Api,
) -> None:
    person = await api.register(name="赵敏")
    call = {"interaction_id": "通话-1 \U0007b283", "channel": "phone", "direction": "outbound",
            "summary": "renewal talk", "occurred_at": "2024-03-01T09:30:00+08:00"}

    logged = await api.client.post(
        f"{CUSTOMERS}/{person}/interactions", json=call, headers=api.auth()
    )

    assert logged.status_code == 201, logged.text
    assert logged.headers["Location"].endswith(
        "/interactions/%E9%80%9A%E8%AF%9D-1%20%F1%BB%8A%83"
    )
