"""The tickets database's migration history (``crm migrate tickets``).

``TARGET_METADATA`` is what the code queries: a test checks that the migrations at
head build exactly that. The known-customers projection's own table is made per
generation by the runtime and takes the rebuild path (docs/decisions/0021).
"""

from pathlib import Path

from libs.events import published, schema, store
from libs.events.projection import runtime_metadata
from services.tickets.handlers import surveys
from services.tickets.read_model import ticket_list

FOLDER = Path(__file__).parent
TARGET_METADATA = (
    store.metadata,
    published.relay_metadata,
    runtime_metadata,
    ticket_list.metadata,
    surveys.metadata,
)
ROUTINES = tuple(schema.ROUTINES)
