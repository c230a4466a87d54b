"""Each event keeps the trace context of the request that appended it, which the relay
carries to Kafka (docs/decisions/0103).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from libs.events.schema import add_trace_context_v3

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_trace_context_v3(op)


def downgrade() -> None:
    raise NotImplementedError("not undone: restore a backup instead")
