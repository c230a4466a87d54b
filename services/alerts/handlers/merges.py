"""A merged-away duplicate leaves the ranking: its facts, tasks and birthday move to the
survivor, its risk falls to none and its open alert is closed."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from libs.events.catalog import DomainEvent
from libs.events.catalog.alerts import AlertClosed, ChurnRiskChanged
from libs.events.store import NewEvent
from services.alerts.handlers import churn_metrics
from services.alerts.handlers.context import Alerts
from services.alerts.read_model import alert_list, churn_facts, reminder_list


async def retire_duplicate(
    alerts: Alerts, conn: AsyncConnection, tenant_id: str, duplicate: str, survivor: str
) -> int:
    """Merge the duplicate's facts into the survivor; a duplicate at risk leaves the
    ranking at none and its open alert is closed (the survivor, assessed next, carries
    the risk): the events appended."""
    before = await churn_facts.customer(conn, tenant_id, duplicate, lock=True)
    await churn_facts.merge(conn, tenant_id, duplicate, survivor)
    await reminder_list.move_tasks(conn, tenant_id, duplicate, survivor)
    await reminder_list.move_birthday(conn, tenant_id, duplicate, survivor)
    if before is None or (before.level == "none" and before.open_alert_id is None):
        return 0
    now = alerts.clock()
    news: list[DomainEvent] = []
    if before.level != "none":
        news.append(
            ChurnRiskChanged(
                customer_id=duplicate,
                from_level=before.level,
                to_level="none",
                score=0,
                owner_id=before.owner_id,
                as_of=now,
            )
        )
    if before.open_alert_id is not None:
        news.append(
            AlertClosed(
                alert_id=before.open_alert_id,
                customer_id=duplicate,
                closure="left_risk_level",
                reason=f"merged into {survivor}",
            )
        )
        await alert_list.alert_status(
            conn,
            tenant_id,
            before.open_alert_id,
            "left_risk_level",
            now,
            reason=f"merged into {survivor}",
        )
    version = await alerts.store.append(
        tenant_id,
        duplicate,
        before.version,
        [NewEvent.from_domain(e, partition_key=duplicate, occurred_at=now) for e in news],
        conn=conn,
    )
    await churn_facts.assessed(conn, tenant_id, duplicate, "none", 0, version, None)
    churn_metrics.decided(news)
    return len(news)
