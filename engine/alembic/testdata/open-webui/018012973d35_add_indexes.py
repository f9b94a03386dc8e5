"""Add indexes

Revision ID: 018012973d35
Revises: d31026856c01
Create Date: 2025-08-13 03:00:00.000000

"""

revision = "018012973d35"
down_revision = "d31026856c01"
branch_labels = None
depends_on = None
