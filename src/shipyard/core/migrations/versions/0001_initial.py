"""Initial schema: resources, their labels and owners, and the event log.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(200), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("uid", sa.String(36), nullable=False, unique=True),
        sa.Column("rv", sa.BigInteger, nullable=False),
        sa.Column("phase", sa.String(64), nullable=True),
        sa.Column("data", sa.Text, nullable=False),
        sa.UniqueConstraint("kind", "namespace", "name", name="uq_resources_key"),
    )
    op.create_index("ix_resources_kind_phase", "resources", ["kind", "phase"])
    op.create_table(
        "labels",
        sa.Column(
            "resource_id",
            sa.Integer,
            sa.ForeignKey("resources.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("key", sa.String(317), primary_key=True),
        sa.Column("value", sa.String(63), nullable=False),
    )
    op.create_index("ix_labels_key_value", "labels", ["key", "value"])
    op.create_table(
        "owners",
        sa.Column(
            "resource_id",
            sa.Integer,
            sa.ForeignKey("resources.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("owner_uid", sa.String(36), primary_key=True),
    )
    op.create_index("ix_owners_owner_uid", "owners", ["owner_uid"])
    op.create_table(
        "events",
        sa.Column("rv", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.String(200), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
    )
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    for table in ("store_meta", "events", "owners", "labels", "resources"):
        op.drop_table(table)
