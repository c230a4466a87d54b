"""The analytics database's migration history (``crm migrate analytics``).

Migrated here: the event store and outbox (segment entries and exits), the projection
runtime's bookkeeping, and the service's own tables (settings, segments, members,
count history). The projection's tables are made per generation by the runtime and
take the rebuild path instead: a new shape is a new generation filled from the
topics (docs/decisions/0021).
"""

from pathlib import Path

from libs.events import published, schema, store
from libs.events.projection import runtime_metadata
from services.analytics.read_model import segment_list

FOLDER = Path(__file__).parent
TARGET_METADATA = (
    store.metadata,
    published.relay_metadata,
    runtime_metadata,
    segment_list.metadata,
)
ROUTINES = tuple(schema.ROUTINES)
