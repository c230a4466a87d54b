"""Customer imports become jobs (decision 0015): the job table, its checkpoint and report.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

from libs.platform.db import JsonDocument, UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contacts_import_jobs",
        sa.Column("job_id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("request_key", sa.String(80), nullable=False),
        sa.Column("submission_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("submitted_by", sa.String(64), nullable=False),
        sa.Column("submitted_at", UtcDateTime, nullable=False),
        sa.Column("started_at", UtcDateTime),
        sa.Column("finished_at", UtcDateTime),
        sa.Column("heartbeat_at", UtcDateTime),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("file", sa.LargeBinary),
        sa.Column("options", JsonDocument, nullable=False),
        sa.Column("rows_total", sa.Integer, nullable=False),
        sa.Column("rows_done", sa.Integer, nullable=False),
        sa.Column("after_row", sa.Integer, nullable=False),
        sa.Column("report", JsonDocument),
        sa.Column("failure", sa.Text),
        sa.UniqueConstraint("tenant_id", "request_key", name="uq_contacts_import_jobs_request"),
    )


def downgrade() -> None:
    op.drop_table("contacts_import_jobs")
