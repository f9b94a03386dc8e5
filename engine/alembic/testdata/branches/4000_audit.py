"""audit: a second base that needs the billing tables

Revision ID: 4000
Revises:
Create Date: 2025-01-05 00:00:00

"""
revision = "4000"
down_revision = None
branch_labels = ["audit"]
depends_on = "billing"


def upgrade():
    pass


def downgrade():
    pass
