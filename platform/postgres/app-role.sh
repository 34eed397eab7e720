#!/bin/sh
# Creates the application's database role (app-role.sql beside this file) when the postgres
# image initialises an empty data volume: docker-compose.yml mounts this script in
# /docker-entrypoint-initdb.d and the SQL at the path below. The image runs it as
# POSTGRES_USER, the owner of POSTGRES_DB and of every table the migrations create, over
# the local socket, before it accepts connections from the app containers.
#
# A data volume that already holds a database is never initialised again: on an existing
# installation run this script by hand, once (docs/operations.md, "The database role"):
#   docker compose exec db /docker-entrypoint-initdb.d/app-role.sh
set -eu

psql --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set app_role="$ARBITER_APP_ROLE" \
    --set app_password="$ARBITER_APP_PASSWORD" \
    --file /etc/arbiter/app-role.sql
