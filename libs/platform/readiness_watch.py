"""What ``crm run`` prints once the platform can be used, and not before.

Every service's ``/readyz`` must answer 200 (its database answers, its projectors have
joined their consumer groups): a read-your-writes right after "ready" then works. Until
then it says which services it still waits for, every few seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping

import httpx

Probe = Callable[[str], int | None]


def http_probe(url: str) -> int | None:
    """The status of ``GET url``, or None when nothing answers."""
    try:
        return httpx.get(url, timeout=2.0).status_code
    except httpx.HTTPError:
        return None


def not_ready(readiness_urls: Mapping[str, str], probe: Probe) -> list[str]:
    """The services whose ``/readyz`` does not answer 200 right now."""
    return [name for name, url in readiness_urls.items() if probe(url) != 200]


def ready_message(gateway_url: str, seconds: float, supervision: str = "") -> str:
    """What to do now; ``supervision``: how to see the supervised processes, if they are."""
    restarts = (
        [f"  restarts  a crashed process restarts on its own; status: {supervision}"]
        if supervision
        else []
    )
    return "\n".join(
        [
            f"ready: every service answers /readyz ({seconds:.1f} s after start)",
            "  a user    .venv/bin/crm users invite you@example.com --tenant demo"
            " (prints a link to set a password)",
            f"  console   {gateway_url}/ in a browser: sign in as that user",
            "  a token   TOKEN=$(.venv/bin/crm token --tenant demo --roles admin) for scripts",
            f'  try       curl -H "Authorization: Bearer $TOKEN" {gateway_url}/api/v1/customers',
            f"  API docs  {gateway_url}/docs (OpenAPI: {gateway_url}/openapi.json)",
            f"  health    {gateway_url}/readyz; metrics at /metrics on each service",
            *restarts,
        ]
    )


def watch_until_ready(
    readiness_urls: Mapping[str, str],
    gateway_url: str,
    *,
    say: Callable[[str], None],
    stop: threading.Event,
    supervision: str = "",
    probe: Probe = http_probe,
    every_seconds: float = 0.5,
    remind_every_seconds: float = 10.0,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Poll until every service is ready (True: "ready" said) or ``stop`` is set."""
    started = last_reminder = clock()
    while not stop.is_set():
        waiting = not_ready(readiness_urls, probe)
        if not waiting:
            say(ready_message(gateway_url, clock() - started, supervision))
            return True
        if clock() - last_reminder >= remind_every_seconds:
            say(f"not ready yet: {', '.join(waiting)}")
            last_reminder = clock()
        stop.wait(every_seconds)
    return False
