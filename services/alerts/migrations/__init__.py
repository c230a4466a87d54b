"""The alerts database's migration history (``crm migrate alerts``).

``TARGET_METADATA`` is what the code queries: a test checks that the migrations at
head build exactly that (docs/decisions/0021).
"""

from pathlib import Path

from libs.events import published, schema, store
from libs.events.projection import runtime_metadata
from services.alerts.handlers import past_rankings
from services.alerts.notifications import read_model as notification_tables
from services.alerts.read_model import alert_list, churn_facts, reminder_list

FOLDER = Path(__file__).parent
TARGET_METADATA = (
    store.metadata,
    published.relay_metadata,
    runtime_metadata,
    churn_facts.metadata,
    alert_list.metadata,
    reminder_list.metadata,
    past_rankings.metadata,
    notification_tables.metadata,
)
ROUTINES = tuple(schema.ROUTINES)
