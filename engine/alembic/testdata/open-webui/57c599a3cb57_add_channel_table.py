"""Add channel table

Revision ID: 57c599a3cb57
Revises: 922e7a387820
Create Date: 2024-12-22 03:00:00.000000

"""

revision = '57c599a3cb57'
down_revision = '922e7a387820'
branch_labels = None
depends_on = None
