"""labels name the model they are for

``labels.model_name``: a label of a logged prediction is for the model that served it; a label of a text
seen elsewhere (``driftline labels import --text-col``, ``POST /feedback`` with a text) for the model it
was given to. Counting and listing labels (what the drift monitor's policy and a retraining run read)
are per model from here on; before, they counted every model's labels.

Backfill: each label that still points to a prediction takes that prediction's model; then, in a
database with exactly one model, every other label is that model's. A label left without one (a text
label, or one whose prediction was pruned, in a database of several models) stays NULL, and every model
counts it, as every model did before this revision. The index answers "the labels of a model since a
time". Downgrade drops the column and its index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

labels = sa.table(
    "labels",
    sa.column("prediction_id", sa.String(32)),
    sa.column("model_name", sa.String(200)),
)
predictions = sa.table("predictions", sa.column("id", sa.String(32)), sa.column("model_name", sa.String(200)))
models = sa.table("registered_models", sa.column("name", sa.String(200)))


def upgrade() -> None:
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_name", sa.String(length=200), nullable=True))
        batch_op.create_index("ix_labels_model_created", ["model_name", "created_at"], unique=False)
    served_by = (
        sa.select(predictions.c.model_name)
        .where(predictions.c.id == labels.c.prediction_id)
        .scalar_subquery()
    )
    op.execute(labels.update().where(labels.c.prediction_id.is_not(None)).values(model_name=served_by))
    names = op.get_bind().execute(sa.select(models.c.name).limit(2)).scalars().all()
    if len(names) == 1:
        op.execute(labels.update().where(labels.c.model_name.is_(None)).values(model_name=names[0]))


def downgrade() -> None:
    with op.batch_alter_table("labels", schema=None) as batch_op:
        batch_op.drop_index("ix_labels_model_created")
        batch_op.drop_column("model_name")
