"""Migrate tags

Revision ID: 1af9b942657b
Revises: 242a2047eae0
Create Date: 2024-10-09 21:02:35.241684

"""

revision = "1af9b942657b"
down_revision = "242a2047eae0"
branch_labels = None
depends_on = None
