"""Add group table

Revision ID: 922e7a387820
Revises: 4ace53fd72c8
Create Date: 2024-11-14 03:00:00.000000

"""

revision = "922e7a387820"
down_revision = "4ace53fd72c8"
branch_labels = None
depends_on = None
