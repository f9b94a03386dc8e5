"""init

Revision ID: 7e5b5dc7342b
Revises:
Create Date: 2024-06-24 13:15:33.808998

"""
from alembic import op

# revision identifiers, used by Alembic.
revision = "7e5b5dc7342b"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE applied_log (revision text NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())")
    op.execute("CREATE TABLE auth (id text PRIMARY KEY, email text NOT NULL)")
    op.execute("INSERT INTO applied_log (revision) VALUES ('7e5b5dc7342b')")


def downgrade():
    op.execute("DROP TABLE auth")
    op.execute("DROP TABLE applied_log")
