"""merge billing and search

Revision ID: 3000
Revises: 2a00, 2b00
Create Date: 2025-01-04 00:00:00

"""
from typing import Sequence, Union

revision: str = "3000"
down_revision: Union[str, Sequence[str], None] = (
    "2a00",  # billing
    "2b00",  # search
)
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
