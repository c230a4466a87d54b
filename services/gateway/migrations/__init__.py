"""The gateway database's migration history (``crm migrate gateway``): its API keys,
console users and their sessions."""

from pathlib import Path

from services.gateway import api_keys, sessions, users

FOLDER = Path(__file__).parent
TARGET_METADATA = (api_keys.metadata, users.metadata, sessions.metadata)
ROUTINES: tuple[str, ...] = ()
