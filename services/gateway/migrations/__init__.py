"""The gateway database's migration history (``crm migrate gateway``): its API keys."""

from pathlib import Path

from services.gateway import api_keys

FOLDER = Path(__file__).parent
TARGET_METADATA = (api_keys.metadata,)
ROUTINES: tuple[str, ...] = ()
