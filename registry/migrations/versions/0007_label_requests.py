"""label requests: what the label queue handed out, to whom, until when

``label_requests``: one row per prediction handed out by the label queue (``GET /api/label-queue``,
``driftline labels queue``), with the strategy that chose it (``margin`` or ``random``), its rank and
margin, the hand-out it belongs to and when its lease expires. A prediction with a lease that has not
expired is not offered again; nor is one that has a label.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 19:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "label_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("prediction_id", sa.String(length=32), nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("handout", sa.String(length=32), nullable=False),
        sa.Column("strategy", sa.String(length=16), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("margin", sa.Float(), nullable=False),
        sa.Column("handed_to", sa.String(length=200), nullable=False),
        sa.Column("handed_out_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["prediction_id"],
            ["predictions.id"],
            name=op.f("fk_label_requests_prediction_id_predictions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_label_requests")),
    )
    with op.batch_alter_table("label_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_label_requests_prediction_expires", ["prediction_id", "expires_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_label_requests_handout"), ["handout"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("label_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_label_requests_handout"))
        batch_op.drop_index("ix_label_requests_prediction_expires")
    op.drop_table("label_requests")
