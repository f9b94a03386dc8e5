"""base

Revision ID: 1000
Revises:
Create Date: 2025-01-01 00:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = "1000"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("account", sa.Column("id", sa.Integer, primary_key=True))


def downgrade():
    op.drop_table("account")
