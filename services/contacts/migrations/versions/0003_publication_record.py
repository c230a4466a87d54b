"""The relay records what the broker acknowledged, to notice a broker that lost it
(docs/decisions/0010).

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from libs.events.schema import create_publication_record_v2

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_publication_record_v2(op)


def downgrade() -> None:
    raise NotImplementedError("not undone: restore a backup instead")
