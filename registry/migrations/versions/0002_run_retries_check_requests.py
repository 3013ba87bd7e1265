"""run retries with back-off; drift checks requested through the control API

``retrain_runs.not_before``: a run whose process died goes back to the queue and waits until then.
``check_requests``: the service records a request, the scheduler's leader runs the check (the two
never import each other).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("retrain_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "check_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(length=200), nullable=False),
        sa.Column("requested_by", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("drift_check_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("handled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["drift_check_id"],
            ["drift_checks.id"],
            name=op.f("fk_check_requests_drift_check_id_drift_checks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_check_requests")),
    )
    with op.batch_alter_table("check_requests", schema=None) as batch_op:
        batch_op.create_index("ix_check_requests_status_id", ["status", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("check_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_check_requests_status_id")
    op.drop_table("check_requests")
    with op.batch_alter_table("retrain_runs", schema=None) as batch_op:
        batch_op.drop_column("not_before")
