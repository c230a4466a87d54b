"""Timeline lines as data (docs/decisions/0109): each generation's timeline table gains
``facts``. Lines written before stay without (the console then
shows their English summary); ``crm rebuild customer360`` writes them all again.

The generation tables are made by the projection, not by a revision, so this one
finds those that exist (none on a new database).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

from libs.platform.db import JsonDocument

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table in inspector.get_table_names():
        if not table.startswith("customer360_timeline_g"):
            continue
        present = {column["name"] for column in inspector.get_columns(table)}
        if "facts" not in present:
            with op.batch_alter_table(table) as batch:
                batch.add_column(sa.Column("facts", JsonDocument, nullable=True))


def downgrade() -> None:
    raise NotImplementedError("not undone: restore a backup instead")
