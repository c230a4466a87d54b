"""What the relay published and the id behind each checkpoint: how the pipeline notices
a broker that lost its topics (docs/decisions/0010).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from libs.events.schema import add_checkpoint_event_id_v2, create_publication_record_v2

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_publication_record_v2(op)
    add_checkpoint_event_id_v2(op)


def downgrade() -> None:
    raise NotImplementedError("not undone: restore a backup instead")
