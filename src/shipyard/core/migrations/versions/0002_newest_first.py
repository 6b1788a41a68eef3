"""An index for listing a kind newest first (by id, which grows with every create).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_resources_kind_id", "resources", ["kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_resources_kind_id", table_name="resources")
