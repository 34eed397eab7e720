#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings.local")
    from django.core.management import execute_from_command_line
    from django.db import InterfaceError, OperationalError

    try:
        execute_from_command_line(sys.argv)
    except (OperationalError, InterfaceError) as exc:
        # A database that is down, unreachable or not migrated: a sentence, not a traceback.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        command = " ".join(sys.argv[1:2]) or "manage.py"
        sys.stderr.write(
            f"{command} stopped: the database failed ({reason}). Check that the database "
            "server is running, that DATABASE_URL points at it and that `manage.py migrate` "
            "has run.\n"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
