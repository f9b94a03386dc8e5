"""Migrate tags (the other side of the branch)

Revision ID: 1af9b942657b
Revises: ca81bd47c050
Create Date: 2024-10-09 21:02:35.241684

"""
from alembic import op

revision = "1af9b942657b"
down_revision = "ca81bd47c050"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE tag (id text PRIMARY KEY, name text NOT NULL)")
    op.execute("INSERT INTO applied_log (revision) VALUES ('1af9b942657b')")


def downgrade():
    op.execute("DROP TABLE tag")
