"""Add an index on chat titles (slow: it sleeps, so that replicas wait)

Revision ID: 4ace53fd72c8
Revises: 3781e22d8b01
Create Date: 2024-12-01 10:00:00.000000

"""
import os

from alembic import op

revision: str = "4ace53fd72c8"
down_revision = "3781e22d8b01"
branch_labels = None
depends_on = None


def upgrade() -> None:
    seconds = float(os.environ.get("ALEMBIC_APP_SLOW", "2"))
    if os.environ.get("ALEMBIC_APP_SLOW_FILE"):
        with open(os.environ["ALEMBIC_APP_SLOW_FILE"]) as f:
            seconds = float(f.read())
    op.execute("SELECT pg_sleep(%s) /* alembic_app_slow */" % seconds)
    op.execute("CREATE INDEX chat_title ON chat (title)")
    op.execute("INSERT INTO applied_log (revision) VALUES ('4ace53fd72c8')")


def downgrade() -> None:
    op.execute("DROP INDEX chat_title")
