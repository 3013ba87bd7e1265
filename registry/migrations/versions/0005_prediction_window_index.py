"""an index for the drift check's window and the guard's rows

A drift check reads the latest N predictions one version served (``Registry.window``) and the guard the
labeled ones it served since a time (``Registry.labeled_predictions``): both filter on model and version
and order by time, which ``(model_name, model_version, created_at, id)`` answers in its order from the index alone, however
many months of predictions the table holds.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 15:00:00
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_predictions_model_version_created",
        "predictions",
        ["model_name", "model_version", "created_at", "id"],
    )


def downgrade() -> None:
    op.drop_index("ix_predictions_model_version_created", table_name="predictions")
