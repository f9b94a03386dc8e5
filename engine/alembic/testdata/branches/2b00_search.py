"""search

Revision ID: 2b00
Revises: 1000
Create Date: 2025-01-03 00:00:00

"""
revision = "2b00"
down_revision = "1000"
branch_labels = "search"
depends_on = None


def upgrade():
    down_revision = "2a00"


def downgrade():
    pass
