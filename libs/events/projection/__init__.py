"""The projection runtime: read models built from topics, exactly once in effect.

A batch's effects, the ids of the events it applied and the position it
reached are written in one database transaction; Kafka offsets are committed
after it. So:

* a crash mid-batch rolls the whole batch back, and the redelivered batch is
  applied as if for the first time;
* an event delivered twice (a relay that re-sent it, a redelivery) finds its id
  already recorded and changes nothing;
* on (re)assignment a partition resumes from the position in the database,
  which is never behind the effects it describes.

A projection's tables carry a generation number. A rebuild fills generation
N+1 from the earliest offset while N keeps serving, then swaps the active
generation in one update.

One projection's events applied (``runner.py``), which generation serves
(``serving.py``), and a rebuild (``rebuilding.py``): re-exported here.
"""

from __future__ import annotations

from libs.events.checkpoints import applied_events, checkpoints, generations, runtime_metadata
from libs.events.lag import PartitionLag, ProjectionStatus, end_offsets, projection_status
from libs.events.projection.rebuilding import RebuildProgress, RebuildRefused, rebuild
from libs.events.projection.runner import Projection, ProjectionRunner
from libs.events.projection.serving import (
    LiveProjection,
    ProjectionFactory,
    activate_generation,
    active_generation,
)

__all__ = [
    "LiveProjection",
    "PartitionLag",
    "Projection",
    "ProjectionFactory",
    "ProjectionRunner",
    "ProjectionStatus",
    "RebuildProgress",
    "RebuildRefused",
    "activate_generation",
    "active_generation",
    "applied_events",
    "checkpoints",
    "end_offsets",
    "generations",
    "projection_status",
    "rebuild",
    "runtime_metadata",
]
