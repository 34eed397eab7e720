"""Operator commands: create_user, create_api_key, verify_audit (exit codes and messages)."""

from __future__ import annotations

import io
import sys

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from governance.models import ApiKey, AuditEvent
from governance.roles import roles_of

pytestmark = pytest.mark.django_db


def create_user(monkeypatch, *args: str, password: str = "a-long-pass-phrase\n") -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(password))
    out = io.StringIO()
    call_command("create_user", *args, stdout=out)
    return out.getvalue()


def test_create_user_with_several_roles(monkeypatch):
    output = create_user(
        monkeypatch, "rita", "--role", "checker", "--role", "auditor", "--password-stdin"
    )
    assert "Created rita" in output
    user = get_user_model().objects.get(username="rita")
    assert roles_of(user) == {"checker", "auditor"}
    assert user.check_password("a-long-pass-phrase")
    event = AuditEvent.objects.get(action="user_create")
    assert event.details == {"roles": ["auditor", "checker"]}


def test_create_user_refuses_clearly(monkeypatch):
    with pytest.raises(CommandError, match="--password-stdin"):
        create_user(monkeypatch, "rita", "--role", "maker")
    with pytest.raises(CommandError, match=r"too short|too common"):
        create_user(monkeypatch, "rita", "--role", "maker", "--password-stdin", password="abc\n")
    with pytest.raises(CommandError, match="invalid choice"):
        create_user(monkeypatch, "rita", "--role", "wizard", "--password-stdin")
    create_user(monkeypatch, "rita", "--role", "maker", "--password-stdin")
    with pytest.raises(CommandError, match="already exists"):
        create_user(monkeypatch, "rita", "--role", "maker", "--password-stdin")
    assert get_user_model().objects.count() == 1


NOT_UTF8 = b"\xff\xfe\xe9abcdefgh\n"


@pytest.mark.parametrize(
    "stdin",
    [
        # What Python hands on in a POSIX locale (surrogateescape) ...
        io.StringIO(NOT_UTF8.decode("utf-8", "surrogateescape")),
        # ... and in a UTF-8 locale, where reading the bytes fails.
        io.TextIOWrapper(io.BytesIO(NOT_UTF8), encoding="utf-8"),
    ],
    ids=["surrogates", "strict"],
)
def test_create_user_refuses_a_password_that_is_not_utf8(monkeypatch, stdin):
    monkeypatch.setattr(sys, "stdin", stdin)
    with pytest.raises(CommandError, match=r"^The password on standard input is not valid UTF-8"):
        call_command("create_user", "newbie5", "--role", "maker", "--password-stdin")
    assert not get_user_model().objects.exists()
    assert not AuditEvent.objects.exists()


def test_create_api_key_prints_the_key_once_and_stores_its_hash(monkeypatch):
    create_user(monkeypatch, "lending-svc", "--role", "api_client", "--password-stdin")
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "--user", "lending-svc", stdout=out, stderr=err)
    key = out.getvalue().strip()
    row = ApiKey.objects.get()
    assert key.startswith(row.prefix + ".")
    assert key not in row.key_hash and "not shown again" in err.getvalue()
    assert f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC" in err.getvalue()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    assert client.get("/api/v1/decisions/").status_code == 200
    with pytest.raises(CommandError, match="no user called"):
        call_command("create_api_key", "--user", "ghost")
    err = io.StringIO()
    call_command(
        "create_api_key", "--user", "lending-svc", "--days", "0", stdout=io.StringIO(), stderr=err
    )
    assert "never expires" in err.getvalue()
    with pytest.raises(CommandError, match="from 1 to 3650, or 0 for never"):
        call_command("create_api_key", "--user", "lending-svc", "--days", "5000")


def test_create_api_key_refuses_a_name_longer_than_100_characters(monkeypatch):
    create_user(monkeypatch, "lending-svc", "--role", "api_client", "--password-stdin")
    with pytest.raises(
        CommandError, match=r"^An API key's name is at most 100 characters; this one has 500\.$"
    ):
        call_command("create_api_key", "--user", "lending-svc", "--name", "x" * 500)
    with pytest.raises(CommandError, match="cannot contain a NUL character"):
        call_command("create_api_key", "--user", "lending-svc", "--name", "nightly\x00batch")
    assert not ApiKey.objects.exists()
    assert not AuditEvent.objects.filter(action="api_key_create").exists()
    call_command(
        "create_api_key", "--user", "lending-svc", "--name", "n" * 100,
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    assert ApiKey.objects.get().name == "n" * 100


def test_verify_audit_proves_a_recorded_head_is_still_in_the_chain(monkeypatch):
    from django.db import connection

    create_user(monkeypatch, "zero", "--role", "maker", "--password-stdin")
    create_user(monkeypatch, "first", "--role", "maker", "--password-stdin")
    recorded = AuditEvent.objects.latest("seq")
    create_user(monkeypatch, "second", "--role", "maker", "--password-stdin")
    out = io.StringIO()
    call_command("verify_audit", "--head", recorded.hash, stdout=out)
    assert f"the head recorded earlier is event #{recorded.seq}" in out.getvalue()

    # Cut back to the state of a backup taken at ``recorded``'s predecessor (events and
    # the chain's head alike), as someone with the database could: it verifies as intact.
    earlier = AuditEvent.objects.get(seq=recorded.seq - 1)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("DELETE FROM governance_auditevent WHERE seq > %s", [earlier.seq])
        cursor.execute(
            "UPDATE governance_chainhead SET seq = %s, hash = %s WHERE name = 'governance'",
            [earlier.seq, earlier.hash],
        )
    call_command("verify_audit", "--skip-artifacts", stdout=io.StringIO())  # intact
    err = io.StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("verify_audit", "--head", recorded.hash, stdout=io.StringIO(), stderr=err)
    assert exited.value.code == 1
    assert f"the head {recorded.hash} recorded earlier is not in the chain" in err.getvalue()
    with pytest.raises(CommandError, match="64 hexadecimal digits"):
        call_command("verify_audit", "--head", "abc")
