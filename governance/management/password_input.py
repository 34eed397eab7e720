"""The password an operator pipes to ``--password-stdin`` (create_user, reset_password)."""

from __future__ import annotations

import sys

from django.core.management.base import CommandError


def password_read_stdin() -> str:
    """The first line of standard input without its line end.

    Raises ``CommandError`` when there is none or it is not UTF-8 text: depending on the
    locale, Python either refuses such bytes while reading or carries them on as lone
    surrogates, which no password hasher can encode.
    """
    try:
        password = sys.stdin.readline().rstrip("\r\n")
        password.encode("utf-8")
    except UnicodeError:
        raise CommandError(
            "The password on standard input is not valid UTF-8 text; give it again in UTF-8."
        ) from None
    if not password:
        raise CommandError("No password was given on standard input.")
    return password
