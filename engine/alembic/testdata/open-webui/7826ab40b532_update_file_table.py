"""Update file table

Revision ID: 7826ab40b532
Revises: 57c599a3cb57
Create Date: 2024-12-23 03:00:00.000000

"""

revision = "7826ab40b532"
down_revision = "57c599a3cb57"
branch_labels = None
depends_on = None
