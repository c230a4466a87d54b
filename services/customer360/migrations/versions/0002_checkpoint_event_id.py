"""The id behind each checkpoint: how the projector notices a topic that was lost and
refilled (docs/decisions/0010).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from libs.events.schema import add_checkpoint_event_id_v2

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_checkpoint_event_id_v2(op)


def downgrade() -> None:
    raise NotImplementedError("not undone: restore a backup instead")
