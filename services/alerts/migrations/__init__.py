"""The alerts database's migration history (``crm migrate alerts``).

``TARGET_METADATA`` is what the code queries: a test checks that the migrations at
head build exactly that (docs/decisions/0021).
"""

from pathlib import Path

from libs.events import published, schema, store
from libs.events.projection import runtime_metadata
from services.alerts import alert_list, past_rankings, read_model, reminder_list
from services.alerts.notifications import tables as notification_tables

FOLDER = Path(__file__).parent
TARGET_METADATA = (
    store.metadata,
    published.relay_metadata,
    runtime_metadata,
    read_model.metadata,
    alert_list.metadata,
    reminder_list.metadata,
    past_rankings.metadata,
    notification_tables.metadata,
)
ROUTINES = tuple(schema.ROUTINES)
