from libs.platform.migrations import run_migrations
from services.analytics.migrations import ROUTINES, TARGET_METADATA

run_migrations(target_metadata=TARGET_METADATA, routines=ROUTINES)
