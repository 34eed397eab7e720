#!/bin/sh
# Starts one Arbiter role in the container (platform/Dockerfile's ENTRYPOINT):
#   web     wait for the database, apply migrations (as MIGRATION_DATABASE_URL's role when
#           set), serve with gunicorn on :8000
#   worker  wait for the database, run a Celery worker (runs, chunks of distributed runs, jobs)
#   chunk-worker  a Celery worker for chunks of distributed optimisation runs only; needs
#           the broker and the shared artifact root, not the database (extra machines)
#   beat    wait for the database, run Celery beat (one per deployment, never scaled)
#   other   run the command as given, e.g.
#           docker compose run --rm -T web python manage.py create_user NAME --role admin --password-stdin
set -eu

# How long the roles wait for PostgreSQL: a fresh volume takes a few seconds to initialise;
# past a minute something is wrong and failing loudly beats waiting forever.
DB_WAIT_TRIES=30
DB_WAIT_SECONDS=2

# The project root (/app in the image), so relative paths below hold wherever we are started.
cd "$(dirname "$0")/.."

wait_for_database() {
    attempt=1
    while ! output=$(python manage.py check --database default 2>&1); do
        if [ "$attempt" -ge "$DB_WAIT_TRIES" ]; then
            printf '%s\n' "$output" | tail -n 20 >&2
            echo "entrypoint: 'manage.py check --database default' still fails after" \
                "$DB_WAIT_TRIES tries (last output above); check DATABASE_URL and the db service" \
                "(and that its role exists: docs/operations.md, \"The database role\")." >&2
            exit 1
        fi
        echo "entrypoint: waiting for the database (try $attempt of $DB_WAIT_TRIES)..." >&2
        attempt=$((attempt + 1))
        sleep "$DB_WAIT_SECONDS"
    done
}

if [ "$#" -eq 0 ]; then
    set -- web
fi

case "$1" in
    web)
        wait_for_database
        # With several web replicas starting at once, one migrate wins and the others fail
        # and are restarted by compose; run a single web replica for the first start.
        # Migrations create and alter tables, so they run as the tables' owner; the server
        # runs as DATABASE_URL's role, which owns nothing and so cannot switch off the
        # append-only triggers (docs/operations.md, "The database role"). The owner's
        # credentials go no further than migrate: gunicorn does not inherit them.
        if [ -n "${MIGRATION_DATABASE_URL:-}" ]; then
            DATABASE_URL="$MIGRATION_DATABASE_URL" python manage.py migrate --noinput
        else
            python manage.py migrate --noinput
        fi
        unset MIGRATION_DATABASE_URL
        exec gunicorn -c platform/gunicorn.conf.py arbiter.wsgi:application
        ;;
    worker)
        wait_for_database
        # The default queue (runs, reports, sealing) and the chunks of distributed runs
        # (OPTIMISATION_CHUNK_QUEUE in the settings; docs/optimisation-runs.md).
        exec celery -A arbiter worker -Q celery,arbiter-chunks --loglevel=INFO
        ;;
    chunk-worker)
        exec celery -A arbiter worker -Q arbiter-chunks --loglevel=INFO
        ;;
    beat)
        wait_for_database
        # The scheduler is django-celery-beat's DatabaseScheduler (CELERY_BEAT_SCHEDULER in
        # the settings): the schedule and its last run times live in the database, editable
        # in the admin. --schedule only names the file celery's default scheduler would
        # keep (on a volume, so a restart never pushes the daily jobs a full interval back).
        exec celery -A arbiter beat --loglevel=INFO \
            --schedule=/var/lib/arbiter/beat/celerybeat-schedule
        ;;
    *)
        # No database wait: compose's depends_on already starts db first, and a shell for
        # debugging must work even when the database does not.
        exec "$@"
        ;;
esac
