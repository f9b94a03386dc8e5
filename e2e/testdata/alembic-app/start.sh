#!/bin/sh
# The "app": two workers, as `uvicorn --workers 2` starts them; each imports app.config, which
# migrates when ENABLE_DB_MIGRATIONS is true, and then records that it started.
cd "$(dirname "$0")" || exit 1
for worker in 1 2; do
  /usr/bin/python3 -c 'import app.config; from app.env import record; record("app")' &
done
wait
