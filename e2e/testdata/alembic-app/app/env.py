import os
from pathlib import Path

APP_DIR = Path(__file__).parent

# As in Open WebUI: on unless set to something other than "true".
ENABLE_DB_MIGRATIONS = os.environ.get("ENABLE_DB_MIGRATIONS", "True").lower() == "true"
DATABASE_URL = os.environ["DATABASE_URL"]


def record(what):
    path = os.environ.get("ALEMBIC_APP_RECORD")
    if not path:
        return
    line = "%s %s ENABLE_DB_MIGRATIONS=%s\n" % (
        what,
        os.environ.get("SCHEMAGATE_REPLICA_ID", "?"),
        os.environ.get("ENABLE_DB_MIGRATIONS", ""),
    )
    with open(path, "a") as f:
        f.write(line)
