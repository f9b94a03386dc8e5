"""Add config table

Revision ID: ca81bd47c050
Revises: 7e5b5dc7342b
Create Date: 2024-08-25 15:26:35.241684

"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "ca81bd47c050"
down_revision: Union[str, None] = "7e5b5dc7342b"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.execute("CREATE TABLE config (id serial PRIMARY KEY, data jsonb NOT NULL, version int NOT NULL DEFAULT 0)")
    op.execute("INSERT INTO applied_log (revision) VALUES ('ca81bd47c050')")


def downgrade() -> None:
    op.execute("DROP TABLE config")
