"""The event store, the outbox and the read model, as they were created at start-up
before migrations existed (a database of that time is stamped at this revision).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from libs.events.schema import create_event_store_v1
from libs.platform.db import JsonDocument, UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_store_v1(op)
    op.create_table(
        "contacts_customers",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("email", sa.Text),
        sa.Column("phone", sa.String(32)),
        sa.Column("owner_id", sa.String(64)),
        sa.Column("registered_at", UtcDateTime, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("survivor_id", sa.String(64)),
        sa.Column("erased", sa.Boolean, nullable=False),
        sa.Column("search_text", sa.Text, nullable=False),
        sa.Column("profile", JsonDocument, nullable=False),
    )
    op.create_index(
        "ix_contacts_customers_listing",
        "contacts_customers",
        ["tenant_id", "registered_at", "customer_id"],
    )
    op.create_index("ix_contacts_customers_owner", "contacts_customers", ["tenant_id", "owner_id"])
    op.create_index(
        "ix_contacts_customers_survivor", "contacts_customers", ["tenant_id", "survivor_id"]
    )
    op.create_table(
        "contacts_customer_tags",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
    )
    op.create_table(
        "contacts_identities",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), primary_key=True),
        sa.Column("value", sa.String(320), primary_key=True),
        sa.Column("customer_id", sa.String(64), primary_key=True),
    )
    op.create_index(
        "ix_contacts_identities_customer", "contacts_identities", ["tenant_id", "customer_id"]
    )
    op.create_table(
        "contacts_import_runs",
        sa.Column("import_id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("by", sa.String(64), nullable=False),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("finished_at", UtcDateTime, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("created", sa.Integer, nullable=False),
        sa.Column("duplicates", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: restore a backup instead")
