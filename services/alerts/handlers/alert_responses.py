"""Working an alert: acknowledged, resolved, or dismissed as wrong (feedback)."""

from __future__ import annotations

from libs.events.catalog import DomainEvent
from libs.events.catalog.alerts import AlertAcknowledged, AlertClosed
from libs.events.store import NewEvent
from libs.platform.errors import Conflict, NotFound
from services.alerts.handlers.context import Alerts
from services.alerts.read_model import alert_list, churn_facts


async def respond_to_alert(
    alerts: Alerts,
    tenant_id: str,
    alert_id: str,
    response: str,
    by: str,
    reason: str = "",
) -> None:
    """Acknowledge, resolve or dismiss an alert (a dismissal's reason is feedback)."""
    now = alerts.clock()
    async with alerts.engine.begin() as conn:
        found = await alert_list.alert(conn, tenant_id, alert_id)
        if found is None:
            raise NotFound(f"alert {alert_id} not found")
        if found.status not in ("open", "acknowledged") or (
            response == "acknowledged" and found.status == "acknowledged"
        ):
            raise Conflict(f"the alert is {found.status}", alert_status=found.status)
        row = await churn_facts.customer(conn, tenant_id, found.customer_id, lock=True)
        assert row is not None  # an alert is only opened for a known customer
        event: DomainEvent
        if response == "acknowledged":
            event = AlertAcknowledged(alert_id=alert_id, customer_id=found.customer_id, by=by)
        else:
            event = AlertClosed(
                alert_id=alert_id,
                customer_id=found.customer_id,
                closure="resolved" if response == "resolved" else "dismissed",
                reason=reason,
                by=by,
            )
        version = await alerts.store.append(
            tenant_id,
            found.customer_id,
            row.version,
            [NewEvent.from_domain(event, partition_key=found.customer_id, occurred_at=now)],
            conn=conn,
        )
        still_open = row.open_alert_id if response == "acknowledged" else None
        await churn_facts.assessed(
            conn, tenant_id, found.customer_id, row.level, row.score, version, still_open
        )
        await alert_list.alert_status(conn, tenant_id, alert_id, response, now, by, reason)
    alerts.appended(1)
