"""Logging an interaction commutes with every other change to the customer: however
many are logged at once, none is refused for a race (PostgreSQL, over HTTP)."""

from __future__ import annotations

import asyncio
import random

import pytest

from services.contacts.tests.conftest import Api

CUSTOMERS = "/api/v1/customers"


async def log_interaction(api: Api, customer_id: str, n: int) -> int:
    response = await api.client.post(
        f"{CUSTOMERS}/{customer_id}/interactions",
        json={"channel": "phone", "direction": "outbound", "summary": f"call {n}"},
        headers=api.auth(roles=["sales"]),
    )
    return response.status_code


def counted(statuses: list[int]) -> dict[int, int]:
    return {status: statuses.count(status) for status in sorted(set(statuses))}


async def test_concurrent_interactions_on_one_customer_all_land(api: Api) -> None:
    customer_id = await api.register()

    statuses = await asyncio.gather(*(log_interaction(api, customer_id, n) for n in range(80)))

    assert counted(statuses) == {201: 80}
    history = await api.client.get(f"{CUSTOMERS}/{customer_id}/history", headers=api.auth())
    logged = [e for e in history.json()["events"] if "interaction_logged" in e["type"]]
    assert len(logged) == 80
    assert (await api.get(customer_id))["version"] == 81


async def test_interactions_racing_an_erasure_land_before_it_or_are_410(api: Api) -> None:
    customer_id = await api.register()

    async def erase_midway() -> int:
        await asyncio.sleep(0)  # let the first interactions start
        response = await api.client.delete(
            f"{CUSTOMERS}/{customer_id}/personal-data", headers=api.auth()
        )
        return response.status_code

    *statuses, erased = await asyncio.gather(
        *(log_interaction(api, customer_id, n) for n in range(40)), erase_midway()
    )

    assert erased == 200
    assert set(statuses) <= {201, 410}, counted(statuses)
    history = await api.client.get(f"{CUSTOMERS}/{customer_id}/history", headers=api.auth())
    types = [e["type"] for e in history.json()["events"]]
    last_erasure = max(i for i, t in enumerate(types) if "personal_data_erased" in t)
    assert not any("interaction_logged" in t for t in types[last_erasure:])
    assert types.count("crm.contacts.interaction_logged.v1") == statuses.count(201)


@pytest.mark.slow
async def test_five_thousand_interactions_from_eight_clients_all_land(api: Api) -> None:
    # The load that found 1 % refused: 8 clients, up to 110 interactions per customer.
    customers = [await api.register(name=f"客户 {n}") for n in range(46)]
    work: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
    chance = random.Random(10)
    for n in range(5_000):
        work.put_nowait((chance.choice(customers), n))
    statuses: list[int] = []

    async def client() -> None:
        while not work.empty():
            customer_id, n = work.get_nowait()
            statuses.append(await log_interaction(api, customer_id, n))

    await asyncio.gather(*(client() for _ in range(8)))

    assert counted(statuses) == {201: 5_000}
