"""The worker processes of ``crm serve --workers N`` end with their parent.

uvicorn's workers share the parent's listening socket. A parent killed outright
(SIGKILL, the OOM killer) would leave them serving on the port as orphans, and the
parent a supervisor starts again could not bind it: the service would never come back
(docs/decisions/0095). So each worker watches its parent and, once it is gone, stops as
on SIGTERM (in-flight requests finish, the listening socket is closed), and is gone for
certain after ``GRACE_SECONDS``.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

# The worker's app, as ``module:factory``, and the parent that started it.
APP = "CRM_WORKER_APP"
PARENT = "CRM_WORKERS_PARENT"
GRACE_SECONDS = 20.0


def leave_with_parent(
    parent: int, *, every_seconds: float = 0.5, grace_seconds: float = GRACE_SECONDS
) -> threading.Thread:
    """Watch ``parent``; once this process is no longer its child, SIGTERM this process
    and, should that not end it within ``grace_seconds``, exit."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_seconds)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_seconds)
        os._exit(1)

    watcher = threading.Thread(target=watch, name="crm-parent-watch", daemon=True)
    watcher.start()
    return watcher


def create_app() -> Any:
    """uvicorn's app factory in each worker: the service's own factory (``APP``), once
    the worker watches its parent (``PARENT``)."""
    from uvicorn.importer import import_from_string

    leave_with_parent(int(os.environ[PARENT]))
    return import_from_string(os.environ[APP])()
