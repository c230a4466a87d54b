"""The projection runtime's checkpoints, applied event ids and active generations.

Revision ID: 0001
Revises:
"""

from alembic import op

from libs.events.schema import create_projection_runtime_v1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_projection_runtime_v1(op)


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: restore a backup instead")
