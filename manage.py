#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings.local")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line
    from django.db import InterfaceError, OperationalError

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        if settings.configured or "--traceback" in sys.argv:
            raise  # not the settings failing to load: a bug, whose traceback helps
        # The settings refused to load (production without SECRET_KEY, ...); their message
        # says what to set, and a traceback through importlib would only bury it.
        sys.stderr.write(f"{exc}\n")
        sys.exit(1)
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
