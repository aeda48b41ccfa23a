#!/usr/bin/env bash
# Runs once, on an empty data directory (official image entrypoint).
set -euo pipefail
# Replication from the host arrives through the Docker bridge, not from 127.0.0.1.
echo "host replication all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE EXTENSION IF NOT EXISTS pg_qualstats;
SQL
