"""The contacts database's migration history (``crm migrate contacts``).

``TARGET_METADATA`` is what the code queries: a test checks that the migrations at
head build exactly that. ``ROUTINES`` are installed again after every upgrade.
"""

from pathlib import Path

from libs.events import published, schema, store
from services.contacts.handlers import import_job_records
from services.contacts.read_model import customer_list, registration_routine

FOLDER = Path(__file__).parent
TARGET_METADATA = (
    store.metadata,
    published.relay_metadata,
    customer_list.metadata,
    import_job_records.metadata,
)
ROUTINES = (
    *schema.ROUTINES,
    registration_routine.BEFORE_TRACES,
    registration_routine.ROUTINE,
)
