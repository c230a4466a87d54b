"""The customer 360 database's migration history (``crm migrate customer360``).

Only the projection runtime's bookkeeping is migrated here. The view's own tables
are made per generation by the runtime and take the rebuild path instead: a new
shape is a new generation filled from the topics (docs/decisions/0021).
"""

from pathlib import Path

from libs.events.projection import runtime_metadata

FOLDER = Path(__file__).parent
TARGET_METADATA = (runtime_metadata,)
ROUTINES: tuple[str, ...] = ()
