"""merge chat and tags

Revision ID: 3781e22d8b01
Revises: 242a2047eae0, 1af9b942657b
Create Date: 2024-11-01 10:00:00.000000

"""
from typing import Sequence, Union

# revision identifiers, used by Alembic.
revision: str = "3781e22d8b01"
down_revision: Union[str, Sequence[str], None] = ("242a2047eae0", "1af9b942657b")
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

from alembic import op


def upgrade() -> None:
    op.execute("INSERT INTO applied_log (revision) VALUES ('3781e22d8b01')")


def downgrade() -> None:
    pass
