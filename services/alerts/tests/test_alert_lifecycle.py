"""A churn alert's life over HTTP: opened by a rise to high, acknowledged, dismissed
with a reason (feedback the backtest counts) or resolved; closed when the customer
leaves high."""

from __future__ import annotations

from libs.events.catalog.alerts import AlertAcknowledged, AlertClosed
from services.alerts.handlers import sweep
from services.alerts.tests.conftest import Api, days_before
from services.alerts.tests.test_api import complaints_and_a_key_contact_change
from testing.consumers import Clock


async def open_alert(api: Api, customer_id: str) -> dict[str, object]:
    await complaints_and_a_key_contact_change(api, customer_id)
    response = await api.client.get(
        "/api/v1/churn/alerts", params={"status": "open"}, headers=api.auth()
    )
    assert response.status_code == 200, response.text
    (alert,) = response.json()["items"]
    assert isinstance(alert, dict)
    return alert


async def test_an_alert_is_acknowledged_once_then_dismissed_with_its_reason(api: Api) -> None:
    alert = await open_alert(api, "c-1")
    assert (alert["customer_id"], alert["level"], alert["owner_id"]) == ("c-1", "high", "rep-1")
    path = f"/api/v1/churn/alerts/{alert['alert_id']}"
    rep = api.auth(roles=["sales"], subject="rep-1")

    acknowledged = await api.client.post(f"{path}/acknowledge", headers=rep)
    twice = await api.client.post(f"{path}/acknowledge", headers=rep)
    dismissed = await api.client.post(
        f"{path}/dismiss", json={"reason": "seasonal buyer"}, headers=rep
    )
    resolved = await api.client.post(f"{path}/resolve", json={}, headers=rep)

    assert acknowledged.status_code == 200 and acknowledged.json()["status"] == "acknowledged"
    assert twice.status_code == 409
    assert dismissed.status_code == 200, dismissed.text
    assert dismissed.json()["status"] == "dismissed"
    assert dismissed.json()["closed_by"] == "rep-1"
    assert resolved.status_code == 409
    stream = await api.app.state.alerts.store.read_stream("acme", "c-1")
    types = [e.type for e in stream]
    assert types[-2:] == [AlertAcknowledged.type_name, AlertClosed.type_name]
    assert stream[-1].data["closure"] == "dismissed"
    assert stream[-1].data["reason"] == "seasonal buyer"

    backtest = await api.client.post(
        "/api/v1/churn/backtests",
        json={"cutoff": days_before(40).isoformat(), "horizon_days": 30},
        headers=api.auth(),
    )
    assert backtest.status_code == 200, backtest.text
    assert backtest.json()["dismissals"] == {"seasonal buyer": 1}


async def test_leaving_high_closes_the_alert(api: Api, clock: Clock) -> None:
    alert = await open_alert(api, "c-1")
    clock.advance(days=120)  # the complaints and the key contact change fall out of their windows

    await sweep(api.app.state.alerts)

    response = await api.client.get("/api/v1/churn/alerts", headers=api.auth())
    (closed,) = response.json()["items"]
    assert closed["alert_id"] == alert["alert_id"]
    assert closed["status"] == "left_risk_level"


async def test_a_dismissal_needs_a_reason_and_an_unknown_alert_is_not_found(api: Api) -> None:
    alert = await open_alert(api, "c-1")
    path = f"/api/v1/churn/alerts/{alert['alert_id']}"

    no_reason = await api.client.post(f"{path}/dismiss", json={}, headers=api.auth())
    other_tenant = await api.client.post(f"{path}/acknowledge", headers=api.auth("other"))
    unknown = await api.client.post(
        f"/api/v1/churn/alerts/{'0' * 36}/acknowledge", headers=api.auth()
    )

    assert no_reason.status_code == 422 and "reason" in no_reason.text
    assert other_tenant.status_code == 404
    assert unknown.status_code == 404
