"""Forwarding to real services over HTTP: what goes up, what comes back, and what
happens when a service is down or slow."""

from __future__ import annotations

import asyncio
import hashlib
import time

import httpx

from services.gateway.settings import Settings
from services.gateway.tests.support import bearer, gateway_settings, open_gateway
from services.gateway.tests.upstreams import (
    EXPORT_CHUNK,
    EXPORT_CHUNKS,
    SLOW_SECONDS,
    UpstreamServer,
    nowhere,
    short_answer,
)
from testing.problems import problem_of


def raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as the bytes httpx sends for them, to go beside values given as bytes."""
    return [(name.encode("ascii"), value.encode("ascii")) for name, value in headers.items()]


async def test_each_path_goes_to_the_service_that_owns_it(gateway: httpx.AsyncClient) -> None:
    view = await gateway.get("/api/v1/customers/c-42/360", headers=bearer())
    status = await gateway.get("/api/v1/projections/customer360/status", headers=bearer())
    fields = await gateway.get("/api/v1/custom-fields", headers=bearer())

    assert view.status_code == 200
    assert view.json()["view"] == "customer360"
    assert view.json()["customer_id"] == "c-42"
    assert status.json() == {"lag_events": 0}
    assert fields.json()["path"] == "/api/v1/custom-fields"


async def test_the_query_string_goes_up_as_sent(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get(
        "/api/v1/customers?q=%E5%BC%A0%E4%BC%9F&tag=vip&tag=beijing&limit=20", headers=bearer()
    )

    assert response.json()["query"] == [
        ["q", "张伟"],
        ["tag", "vip"],
        ["tag", "beijing"],
        ["limit", "20"],
    ]


async def test_a_json_body_and_the_status_and_headers_of_the_answer_pass_through(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.post(
        "/api/v1/customers",
        json={"kind": "person", "name": "张伟", "email": "zw@example.com"},
        headers={**bearer(), "Accept": "application/json"},
    )

    assert response.status_code == 201
    assert response.headers["Location"] == "/api/v1/customers/c-1"
    assert response.headers["ETag"] == '"1"'
    seen = response.json()
    assert seen["body"] == {"kind": "person", "name": "张伟", "email": "zw@example.com"}
    assert seen["headers"]["content-type"] == "application/json"
    assert seen["headers"]["accept"] == "application/json"
    assert seen["method"] == "POST"


async def test_header_values_beyond_ascii_go_up_byte_for_byte(
    gateway: httpx.AsyncClient,
) -> None:
    # A browser sends UTF-8 in User-Agent; the service judges a non-ASCII If-Match.
    user_agent = "café/1.0 张伟".encode()

    seen = await gateway.get(
        "/api/v1/custom-fields", headers=[*raw(bearer()), (b"User-Agent", user_agent)]
    )
    refused = await gateway.patch(
        "/api/v1/customers/c-1", json={}, headers=[*raw(bearer()), (b"If-Match", "١".encode())]
    )

    assert seen.status_code == 200
    assert seen.json()["headers"]["user-agent"].encode("latin-1") == user_agent
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"] == "If-Match"


async def test_a_header_value_that_is_not_utf8_is_a_422_naming_the_header(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.patch(
        "/api/v1/customers/c-1",
        json={},
        headers=[*raw(bearer()), (b"If-Match", b'"3\xe9"'), (b"Accept-Language", b"fr")],
    )

    forwarded = await gateway.get(
        "/api/v1/custom-fields",
        headers=[*raw(bearer()), (b"X-Forwarded-For", b"10.0.0.\xff"), (b"User-Agent", b"ok")],
    )

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "If-Match", "reason": "the value is neither ASCII nor UTF-8 text"}
    ]
    assert forwarded.status_code == 422
    assert forwarded.json()["errors"][0]["field"] == "X-Forwarded-For"


async def test_if_match_goes_up_and_a_stale_version_comes_back_as_412(
    gateway: httpx.AsyncClient,
) -> None:
    current = await gateway.patch(
        "/api/v1/customers/c-1", json={}, headers={**bearer(), "If-Match": '"3"'}
    )
    stale = await gateway.patch(
        "/api/v1/customers/c-1", json={}, headers={**bearer(), "If-Match": '"2"'}
    )

    assert current.status_code == 200
    assert current.json()["headers"]["if-match"] == '"3"'
    assert current.headers["ETag"] == '"4"'
    assert stale.status_code == 412
    assert problem_of(stale) == {"detail": "customer changed since", "current_version": 3}


async def test_request_and_correlation_ids_reach_the_service(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get(
        "/api/v1/customers",
        headers={**bearer(), "X-Request-ID": "req-123", "X-Correlation-ID": "journey-9"},
    )

    seen = response.json()
    assert seen["headers"]["x-request-id"] == "req-123"
    # The gateway wrote the access line; the service logs it at debug only.
    assert seen["headers"]["x-access-logged-by"] == "gateway"
    assert seen["headers"]["x-correlation-id"] == "journey-9"
    # The service adopted them: its events would carry correlationid journey-9.
    assert seen["correlation_id"] == "journey-9"
    assert response.headers["X-Request-ID"] == "req-123"
    assert response.headers["X-Correlation-ID"] == "journey-9"
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"


async def test_a_request_without_ids_gets_one_the_service_shares(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/api/v1/customers", headers=bearer())

    seen = response.json()
    assert response.headers["X-Request-ID"]
    assert seen["request_id"] == response.headers["X-Request-ID"]
    assert seen["correlation_id"] == response.headers["X-Correlation-ID"]
    assert len(response.headers.get_list("X-Request-ID")) == 1


async def test_a_multipart_csv_import_bigger_than_the_default_body_limit_arrives_whole(
    gateway: httpx.AsyncClient,
) -> None:
    row = "张伟,zw@example.com,+8613800138000,2019-03-01\n".encode()
    csv = b"\xef\xbb\xbfname,email,phone,joined\n" + row * (12 * 1024 * 1024 // len(row))

    response = await gateway.post(
        "/api/v1/customers/import",
        files={"file": ("customers.csv", csv, "text/csv")},
        data={"mapping": '{"joined": "created_at"}'},
        headers=bearer(roles=["integration"]),
    )

    assert response.status_code == 200, response.text
    seen = response.json()
    assert seen["size"] == len(csv)
    assert seen["sha256"] == hashlib.sha256(csv).hexdigest()
    assert seen["filename"] == "customers.csv"
    assert seen["mapping"] == '{"joined": "created_at"}'
    assert seen["headers"]["content-type"].startswith("multipart/form-data; boundary=")


async def test_a_body_over_the_gateways_limit_is_413(
    pg_url: str, contacts_service: UpstreamServer
) -> None:
    settings = gateway_settings(
        pg_url, contacts_service.url, nowhere(), max_request_body_bytes=1024
    )
    async with open_gateway(settings) as gateway:
        response = await gateway.post(
            "/api/v1/customers/import",
            files={"file": ("customers.csv", b"x" * 4096, "text/csv")},
            data={"mapping": "{}"},
            headers=bearer(roles=["integration"]),
        )

    assert response.status_code == 413
    assert problem_of(response) == {
        "detail": "the request body is larger than 1024 bytes",
        "max_bytes": 1024,
    }


async def test_a_streamed_download_comes_back_whole(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/api/v1/customers/c-1/export", headers=bearer())

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.content == EXPORT_CHUNK * EXPORT_CHUNKS


async def test_a_service_that_is_down_is_a_503_naming_it(
    pg_url: str, contacts_service: UpstreamServer
) -> None:
    settings = gateway_settings(pg_url, contacts_service.url, nowhere())
    async with open_gateway(settings) as gateway:
        started_at = time.perf_counter()
        response = await gateway.get("/api/v1/customers/c-1/360", headers=bearer())
        elapsed = time.perf_counter() - started_at
        contacts_still_fine = await gateway.get("/api/v1/customers", headers=bearer())

    assert response.status_code == 503
    assert problem_of(response) == {
        "detail": "customer360 is unavailable", "upstream": "customer360"
    }
    assert response.headers["Retry-After"] == "5"
    assert elapsed < 2
    assert contacts_still_fine.status_code == 200


async def test_a_slow_service_is_a_504_within_the_timeout(
    gateway: httpx.AsyncClient, settings: Settings
) -> None:
    started_at = time.perf_counter()
    response = await gateway.get("/api/v1/customers/slow", headers=bearer())
    elapsed = time.perf_counter() - started_at

    assert response.status_code == 504
    assert problem_of(response) == {
        "detail": "contacts did not answer in time", "upstream": "contacts"
    }
    assert settings.upstream_read_timeout_seconds <= elapsed < SLOW_SECONDS


async def test_an_answer_cut_short_is_a_502_not_a_truncated_200(
    pg_url: str, contacts_service: UpstreamServer
) -> None:
    async with short_answer(then="close") as customer360:
        settings = gateway_settings(pg_url, contacts_service.url, customer360)
        async with open_gateway(settings) as gateway:
            response = await gateway.get("/api/v1/customers/c-1/360", headers=bearer())

    assert response.status_code == 502
    assert problem_of(response) == {
        "detail": "customer360 broke the connection",
        "upstream": "customer360",
    }


async def test_an_answer_whose_body_stops_coming_is_a_504_within_the_timeout(
    pg_url: str, contacts_service: UpstreamServer
) -> None:
    async with short_answer(then="stall") as customer360:
        settings = gateway_settings(pg_url, contacts_service.url, customer360)
        async with open_gateway(settings) as gateway:
            started_at = time.perf_counter()
            response = await gateway.get("/api/v1/customers/c-1/360", headers=bearer())
            elapsed = time.perf_counter() - started_at

    assert response.status_code == 504
    assert problem_of(response) == {
        "detail": "customer360 did not answer in time",
        "upstream": "customer360",
    }
    assert elapsed < 2 * settings.upstream_read_timeout_seconds + 1


async def test_paths_that_climb_out_of_a_route_are_not_forwarded(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.get("/api/v1/customers/%2E%2E/%2E%2E/admin", headers=bearer())

    assert response.status_code == 404


async def test_the_services_own_errors_pass_through_unchanged(
    gateway: httpx.AsyncClient,
) -> None:
    response = await gateway.post(
        "/api/v1/customers",
        content=b"{not json",
        headers={**bearer(), "Content-Type": "application/json"},
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"


async def test_forwarded_requests_are_counted_per_upstream_route_and_outcome(
    gateway: httpx.AsyncClient,
) -> None:
    await gateway.get("/api/v1/customers/c-7/360", headers=bearer())

    metrics = (await gateway.get("/metrics")).text

    assert (
        'crm_gateway_upstream_requests_total{outcome="200",'
        'route="/api/v1/customers/{customer_id}/360",upstream="customer360"}'
    ) in metrics


async def test_credentials_beyond_ascii_are_a_401_not_a_500(gateway: httpx.AsyncClient) -> None:
    for header in (
        (b"Authorization", "Bearer café".encode()),
        (b"Authorization", b"Bearer \xff\xfe"),
        (b"X-API-Key", "crm_key_١".encode()),
    ):
        response = await gateway.get("/api/v1/custom-fields", headers=[header])

        assert response.status_code == 401, (header, response.text)


async def test_http_metrics_name_the_forwarded_route_not_the_catch_all(
    gateway: httpx.AsyncClient,
) -> None:
    await gateway.get("/api/v1/customers/c-8/360", headers=bearer())

    metrics = (await gateway.get("/metrics")).text

    assert (
        'crm_http_requests_total{method="GET",route="/api/v1/customers/{customer_id}/360",'
        'service="gateway",status="200"}'
    ) in metrics
    assert 'route="/api/{path:path}"' not in metrics


UNHURRIED = "/api/v1/customers/unhurried"


async def test_a_burst_beyond_the_pool_queues_for_a_connection_instead_of_failing(
    pg_url: str, contacts_service: UpstreamServer
) -> None:
    # Four connections, twenty readers of 0.4 s each: the last wave waits about 1.6 s
    # for a connection, longer than the 1 s allowed to make one.
    settings = gateway_settings(pg_url, contacts_service.url, nowhere(), upstream_max_connections=4)
    async with open_gateway(settings) as gateway:
        wave = {"seconds": 0.4}
        answers = await asyncio.gather(
            *(gateway.get(UNHURRIED, params=wave, headers=bearer()) for _ in range(20))
        )

    assert [a.status_code for a in answers] == [200] * 20


async def test_a_wait_for_a_connection_past_the_pool_timeout_is_a_fast_503(
    pg_url: str, contacts_service: UpstreamServer
) -> None:
    settings = gateway_settings(
        pg_url,
        contacts_service.url,
        nowhere(),
        upstream_max_connections=1,
        upstream_pool_timeout_seconds=0.2,
    )
    async with open_gateway(settings) as gateway:
        answers = await asyncio.gather(
            *(gateway.get(UNHURRIED, params={"seconds": 1}, headers=bearer()) for _ in range(3))
        )

    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 503, 503]
    refused = next(a for a in answers if a.status_code == 503)
    assert "Retry-After" in refused.headers
