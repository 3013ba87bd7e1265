"""predictions remember whether the model saw the whole text

``predictions.truncated``: the text was longer than the serving model's ``max_length`` tokens and
was cut (the head is kept), so the monitor and the reports can tell how much of the traffic the
model read only in part.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 21:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("truncated", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("truncated")
