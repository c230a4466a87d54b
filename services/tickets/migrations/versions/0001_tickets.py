"""The tickets database's first revision: the event store and outbox (with the relay's
record of what it published), the projection runtime's bookkeeping (for the customers
it learns from contacts), the ticket list with its SLA due times, and survey links.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

from libs.events.schema import (
    add_checkpoint_event_id_v2,
    create_event_store_v1,
    create_projection_runtime_v1,
    create_publication_record_v2,
)
from libs.platform.db import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_event_store_v1(op)
    create_publication_record_v2(op)
    create_projection_runtime_v1(op)
    add_checkpoint_event_id_v2(op)
    op.create_table(
        "tickets",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("ticket_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assignee_id", sa.String(length=64), nullable=True),
        sa.Column("group_name", sa.String(length=64), nullable=True),
        sa.Column("breached", sa.Boolean(), nullable=False),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("first_response_at", UtcDateTime, nullable=True),
        sa.Column("solved_at", UtcDateTime, nullable=True),
        sa.Column("next_due_at", UtcDateTime, nullable=True),
        sa.Column("first_response_seconds", sa.Integer(), nullable=True),
        sa.Column("resolution_seconds", sa.Integer(), nullable=True),
        sa.Column("calendar", sa.String(length=64), nullable=True),
        sa.Column("calendar_version", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "ticket_id"),
    )
    op.create_index("ix_tickets_customer", "tickets", ["tenant_id", "customer_id"], unique=False)
    op.create_index(
        "ix_tickets_next_due",
        "tickets",
        ["next_due_at"],
        unique=False,
        postgresql_where=sa.text("next_due_at IS NOT NULL"),
    )
    op.create_index(
        "ix_tickets_opened", "tickets", ["tenant_id", "opened_at", "ticket_id"], unique=False
    )
    op.create_table(
        "survey_answers",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("survey_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("answered_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "survey_id"),
    )
    op.create_index(
        "ix_survey_answers_time", "survey_answers", ["tenant_id", "answered_at"], unique=False
    )
    op.create_table(
        "survey_links",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("survey_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("token_hash"),
    )


def downgrade() -> None:
    raise NotImplementedError("the first revision is not undone: restore a backup instead")
