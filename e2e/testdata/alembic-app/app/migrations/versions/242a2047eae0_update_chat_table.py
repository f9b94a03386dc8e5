"""Update chat table (one side of a branch)

Revision ID: 242a2047eae0
Revises: ca81bd47c050
Create Date: 2024-10-09 21:02:35.241684

"""
from alembic import op

revision = '242a2047eae0'
down_revision = 'ca81bd47c050'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("CREATE TABLE chat (id text PRIMARY KEY, title text NOT NULL)")
    op.execute("INSERT INTO applied_log (revision) VALUES ('242a2047eae0')")


def downgrade():
    op.execute("DROP TABLE chat")
