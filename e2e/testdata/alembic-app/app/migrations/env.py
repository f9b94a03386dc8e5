from alembic import context
from sqlalchemy import create_engine, pool

from app.env import DATABASE_URL


def url():
    for prefix in ("postgres://", "postgresql://"):
        if DATABASE_URL.startswith(prefix):
            return "postgresql+psycopg2://" + DATABASE_URL[len(prefix):]
    return DATABASE_URL


def run_migrations_online():
    engine = create_engine(url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
