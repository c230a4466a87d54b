"""Which consumers an app's readiness waits for.

An app's lifespan runs inside :func:`collecting`; every projection set up there says
it will consume (:func:`expect_consumers`), and every ``EventConsumer`` started from
it (tasks copy the context they are created in) registers itself. ``/readyz`` then
answers 200 only once each of them has joined its consumer group and none is stalled:
a read-your-writes right after start needs the projector consuming, not merely started.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol


class ConsumerState(Protocol):
    group_id: str
    joined: bool

    @property
    def stalled(self) -> bool: ...


@dataclass(slots=True)
class ConsumerRegistry:
    expected: bool = False
    consumers: list[ConsumerState] = field(default_factory=list)

    def report(self) -> tuple[bool, dict[str, Any]]:
        """(ready, what an operator reads) for this app's consumers."""
        groups = {
            c.group_id: "stalled" if c.stalled else "consuming" if c.joined else "joining"
            for c in self.consumers
        }
        if self.expected and not groups:
            return False, {"status": "starting"}
        ready = all(state == "consuming" for state in groups.values())
        return ready, {"status": "ok" if ready else "not_ready", "groups": groups}


_registry: ContextVar[ConsumerRegistry | None] = ContextVar("crm_consumers", default=None)


@contextmanager
def collecting(registry: ConsumerRegistry) -> Iterator[None]:
    token = _registry.set(registry)
    try:
        yield
    finally:
        try:
            _registry.reset(token)
        except ValueError:
            # A lifespan entered in one task and left in another (a test harness, an
            # ASGI server's own task): the token belongs elsewhere; just clear it here.
            _registry.set(None)


def expect_consumers() -> None:
    """Called where a projection is set up: this app is not ready until it consumes."""
    registry = _registry.get()
    if registry is not None:
        registry.expected = True


def register(consumer: ConsumerState) -> None:
    registry = _registry.get()
    if registry is not None:
        registry.consumers.append(consumer)


def unregister(consumer: ConsumerState) -> None:
    registry = _registry.get()
    if registry is not None and consumer in registry.consumers:
        registry.consumers.remove(consumer)
