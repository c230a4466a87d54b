"""The pipeline database's migration history (``crm migrate pipeline``).

``TARGET_METADATA`` is what the code queries: a test checks that the migrations at
head build exactly that. The known-customers projection's own table is made per
generation by the runtime and takes the rebuild path (docs/decisions/0021).
"""

from pathlib import Path

from libs.events import published, schema, store
from libs.events.projection import runtime_metadata
from services.pipeline import read_model
from services.pipeline.read_model import (  # noqa: F401 (their tables join the metadata)
    funnel,
    known_customers,
    lead_list,
    order_list,
    task_list,
)

FOLDER = Path(__file__).parent
TARGET_METADATA = (
    store.metadata,
    published.relay_metadata,
    runtime_metadata,
    read_model.metadata,
)
ROUTINES = tuple(schema.ROUTINES)
