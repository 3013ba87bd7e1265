"""predictions remember which runtime computed them

``predictions.runtime``: ``torch``, ``onnx`` or ``onnx-int8``. PyTorch and the verified fp32 ONNX graph
give the same outputs, but an int8 graph's embeddings and confidences are its own: the drift monitor
compares a window served on int8 with the version's int8 reference profile. NULL: logged before this
revision, on PyTorch or fp32 ONNX.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 20:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runtime", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions", schema=None) as batch_op:
        batch_op.drop_column("runtime")
