"""billing

The docstring below is stale: the code is what Alembic reads.

Revision ID: 2a00
Revises: 0000
Create Date: 2025-01-02 00:00:00

"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = '2a00'
down_revision: Union[str, None] = '1000'
branch_labels: Union[str, Sequence[str], None] = ('billing',)
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    revision = "not-this-one"
    op.execute("SELECT 1")


def downgrade() -> None:
    pass
