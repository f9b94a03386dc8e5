import logging

from app.env import APP_DIR, ENABLE_DB_MIGRATIONS, record

logging.basicConfig(level=logging.INFO)
log = logging.getLogger(__name__)


def run_migrations():
    # Like Open WebUI's run_migrations(): any error is logged and swallowed, and the app goes on
    # booting on whatever schema the database has.
    log.info("Running migrations")
    record("migrate")
    try:
        from alembic import command
        from alembic.config import Config

        alembic_cfg = Config(str(APP_DIR / "alembic.ini"))
        alembic_cfg.set_main_option("script_location", str(APP_DIR / "migrations"))
        command.upgrade(alembic_cfg, "head")
    except Exception as e:
        log.exception(f"Error running migrations: {e}")


if ENABLE_DB_MIGRATIONS:
    run_migrations()
