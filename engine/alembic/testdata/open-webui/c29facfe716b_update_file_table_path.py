"""Update file table path

Revision ID: c29facfe716b
Revises: c69f45358db4
Create Date: 2024-10-20 17:02:35.241684

"""

revision = "c29facfe716b"
down_revision = "c69f45358db4"
branch_labels = None
depends_on = None
