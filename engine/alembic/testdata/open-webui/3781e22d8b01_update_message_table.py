"""Update message & channel tables

Revision ID: 3781e22d8b01
Revises: 7826ab40b532
Create Date: 2024-12-30 03:00:00.000000

"""

revision = "3781e22d8b01"
down_revision = "7826ab40b532"
branch_labels = None
depends_on = None
