"""Which traces are kept: a trace starts where an action starts (decision 0103).

A request that arrives (SERVER), and a copy of an event published or applied again
(PRODUCER, CONSUMER: replays, which link to the action's trace), may start a trace,
at the configured ratio. Everything else runs in the action's trace or in none:
outside a request the relay and the consumers poll their tables many times a second,
and a trace per poll would be most of the traces and all of the cost.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

_STARTS_AN_ACTION = frozenset({SpanKind.SERVER, SpanKind.PRODUCER, SpanKind.CONSUMER})


class ActionsAtRatio(Sampler):
    """Roots: a request or an event copy at ``ratio``; any other root is dropped."""

    def __init__(self, ratio: float) -> None:
        self.ratio = TraceIdRatioBased(ratio)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind not in _STARTS_AN_ACTION:
            return SamplingResult(Decision.DROP, None, trace_state)
        return self.ratio.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"ActionsAtRatio{{{self.ratio.rate}}}"


def actions_sampler(ratio: float) -> Sampler:
    """Follow the parent's decision; decide roots with ``ActionsAtRatio``."""
    return ParentBased(ActionsAtRatio(ratio))
