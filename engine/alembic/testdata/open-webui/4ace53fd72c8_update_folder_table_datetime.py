"""Update folder table and change DateTime to BigInteger for timestamp fields

Revision ID: 4ace53fd72c8
Revises: af906e964978
Create Date: 2024-10-23 03:00:00.000000

"""

revision = "4ace53fd72c8"
down_revision = "af906e964978"
branch_labels = None
depends_on = None
