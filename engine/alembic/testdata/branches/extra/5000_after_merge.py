"""after the merge

Revision ID: 5000
Revises: 3000
Create Date: 2025-01-06 00:00:00

"""
revision = "5000"; down_revision = "3000"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
