"""The monitoring pages: KPIs per deployment with accessible charts, champion/challenger
intervals and alerts, for the people who read KPIs."""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import timezone

from governance import services
from governance.roles import Role
from monitoring.charts import format_kpi
from monitoring.selectors import kpi_report
from monitoring.services import outcome_batch_record
from tests.monitoring.conftest import go_live

pytestmark = pytest.mark.django_db

PAGES = [
    "/monitoring/",
    "/monitoring/deployments/cross-sell/",
    "/monitoring/alerts/",
    "/monitoring/reports/",
]


@pytest.fixture
def measured(deployment, maker, checker, make_decision, api_client_user):
    go_live(
        services.version_create(
            actor=maker,
            kind="kpi_targets",
            name="cross-sell",
            content={"targets": {"take_up_rate": {"target": 0.6}}},
        ),
        maker=maker,
        checker=checker,
    )
    start = timezone.now() - timedelta(days=2)
    decisions = [
        make_decision(at=start + timedelta(hours=i), arm=arm, customer=f"c-{i}")
        for i, arm in enumerate(["champion"] * 6 + ["challenger"] * 3)
    ]
    outcome_batch_record(
        actor=api_client_user,
        items=[
            {
                "decision_id": str(d.decision_id),
                "event": "accepted",
                "occurred_at": d.created_at + timedelta(minutes=30),
            }
            for d in (decisions[0], decisions[1], decisions[6])
        ],
    )
    return decisions


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.MAKER, True),
        (Role.CHECKER, True),
        (Role.AUDITOR, True),
        (Role.ADMIN, True),
        (Role.API_CLIENT, False),
    ],
)
def test_readers_of_kpis_open_every_monitoring_page(role, allowed, make_user, deployment):
    client = Client()
    client.force_login(make_user(f"someone-{role.replace('_', '-')}", role))
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == (200 if allowed else 403), url
    nav = client.get("/").content.decode()
    assert ('href="/monitoring/"' in nav) is allowed


def test_anonymous_people_are_sent_to_log_in(deployment):
    response = Client().get("/monitoring/deployments/cross-sell/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


def test_the_deployment_page_shows_the_database_figures_with_charts_and_their_text(
    measured, auditor
):
    client = Client()
    client.force_login(auditor)
    response = client.get("/monitoring/deployments/cross-sell/?days=7")
    assert response.status_code == 200
    page = response.content.decode()
    now = timezone.now()
    report = kpi_report(
        actor=auditor, deployment="cross-sell", since=now - timedelta(days=7), until=now
    )
    kpis = {row["key"]: row for row in report["kpis"]}
    take_up = format_kpi("take_up_rate", kpis["take_up_rate"]["value"])
    assert take_up == "33.3%"
    assert re.search(
        rf"Take-up <code>take_up_rate</code></th>\s*<td>{re.escape(take_up)}</td>", page
    )
    assert "at least 60.0%" in page and "missed" in page
    assert "9 decisions" in page
    # A cross-sell deployment has no arrears: collections' measures are not listed.
    assert "<code>cure_rate</code>" not in page and "<code>recovery_rate</code>" not in page
    assert "<code>complaint_rate</code>" in page

    # Every chart: a PNG with a text alternative, a caption and its figures as a table.
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', page)
    assert images
    for data, alt in images:
        assert base64.b64decode(data).startswith(b"\x89PNG")
        assert " by day: " in alt or ": measured on one day only, " in alt
    assert page.count("<figcaption") == len(images)
    assert page.count("by day as a table</summary>") == len(images)
    assert "(dashed: the target)" in page

    # The same KPIs week by week: each week of the window with the take-up rate of the
    # decisions made in it (all nine were made in the last two days).
    weekly = {row["start"]: row["value"] for row in kpis["take_up_rate"]["weekly"]}
    assert "Trends by week" in page
    weeks = page[page.index('id="weeks"') : page.index('id="arms"')]
    week_rows = re.findall(r'<tr><th scope="row"><time datetime="(\d{4}-\d{2}-\d{2})">', weeks)
    assert sorted(week_rows) == sorted(str(day) for day in weekly)
    assert sum(1 for value in weekly.values() if value is not None) >= 1
    for day, value in weekly.items():
        if value is not None:
            row = re.search(rf'datetime="{day}">[^<]*</time></th>(.*?)</tr>', weeks).group(1)
            assert f"<td>{format_kpi('take_up_rate', value)}</td>" in row

    # Champion and challenger with intervals: 2 of 6 against 1 of 3.
    assert "<caption>Rates by arm with 95% intervals (Wilson score interval" in page
    assert "<td>2/6</td>" in page and "<td>1/3</td>" in page
    assert re.search(r"<td>\+0\.0 pp \(-?[0-9.]+ pp to \+[0-9.]+ pp\)</td>", page)
    assert "no drift report yet" in page
    assert "the deployment has no alert rules" in page


def test_the_overview_lists_each_active_deployment_and_what_misses_its_target(measured, maker):
    client = Client()
    client.force_login(maker)
    page = client.get("/monitoring/").content.decode()
    assert 'href="/monitoring/deployments/cross-sell/?days=28"' in page
    assert "<strong>1</strong>: Take-up" in page


def test_an_unknown_deployment_is_a_not_found_page(deployment, checker):
    client = Client()
    client.force_login(checker)
    response = client.get("/monitoring/deployments/nowhere/")
    assert response.status_code == 404
    assert "There is no deployment called" in response.content.decode()


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.labels: set[str] = set()
        self.controls: list[dict] = []
        self.images: list[dict] = []
        self.mains = 0
        self.tables = 0
        self.captions = 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "label" and attrs.get("for"):
            self.labels.add(attrs["for"])
        if tag in ("input", "select", "textarea") and attrs.get("type") != "hidden":
            self.controls.append(attrs)
        if tag == "img":
            self.images.append(attrs)
        self.mains += tag == "main"
        self.tables += tag == "table"
        self.captions += tag == "caption"


def test_monitoring_pages_label_every_control_image_and_table(measured, admin_user):
    client = Client()
    client.force_login(admin_user)
    for url in PAGES:
        page = _Page()
        page.feed(client.get(url).content.decode())
        assert page.mains == 1, url
        for attrs in page.controls:
            assert attrs.get("id") in page.labels, (url, attrs)
        for attrs in page.images:
            assert attrs.get("alt"), (url, attrs)
        assert page.captions == page.tables, url


def test_kpis_of_another_use_case_are_left_out_unless_targeted():
    from monitoring.kpis import KPIS

    assert not KPIS["take_up_rate"].applies_to("collections")
    assert not KPIS["cure_rate"].applies_to("onboarding")
    assert KPIS["cure_rate"].applies_to("collections")
    assert KPIS["complaint_rate"].applies_to("collections")
    # A strategy outside the simulator's use cases: every KPI, nothing hidden.
    assert KPIS["cure_rate"].applies_to("mortgage-retention")
    assert KPIS["take_up_rate"].applies_to(None)


def test_a_targeted_kpi_of_another_use_case_is_shown_with_its_arms(
    deployment, maker, checker, make_decision, auditor
):
    """Cross-sell has no arrears, but a bank that sets a cure-rate target on it sees that
    KPI, in the KPI table and between the arms."""
    go_live(
        services.version_create(
            actor=maker,
            kind="kpi_targets",
            name="cross-sell",
            content={"targets": {"cure_rate": {"target": 0.1}}},
        ),
        maker=maker,
        checker=checker,
    )
    start = timezone.now() - timedelta(days=1)
    for i, arm in enumerate(["champion"] * 3 + ["challenger"] * 2):
        make_decision(at=start + timedelta(hours=i), arm=arm, customer=f"c-{i}")
    client = Client()
    client.force_login(auditor)
    page = client.get("/monitoring/deployments/cross-sell/?days=7").content.decode()
    assert "<code>cure_rate</code>" in page
    assert "<code>recovery_rate</code>" not in page  # untargeted, and not cross-sell's
    arms = page[page.index('id="arms"') :]
    assert "Cure rate" in arms and "Recovery rate" not in arms


def test_a_chart_of_the_same_figures_is_drawn_once_and_new_figures_draw_anew(monkeypatch):
    # Six charts took about 0.9 s of each deployment page; the figures change only as
    # decisions and outcomes arrive.
    from datetime import date

    from django.core.cache import cache

    from monitoring import charts

    cache.clear()
    drawn = []
    real = charts._draw_trend
    monkeypatch.setattr(charts, "_draw_trend", lambda *a, **k: drawn.append(1) or real(*a, **k))
    points = [charts.TrendPoint(date(2026, 3, d), 0.1 * d) for d in (2, 3, 4)]
    first = charts.trend_png("take_up_rate", points, target=0.2)
    assert first.startswith(b"\x89PNG") and len(drawn) == 1
    assert charts.trend_png("take_up_rate", points, target=0.2) == first and len(drawn) == 1
    moved = [*points[:2], charts.TrendPoint(date(2026, 3, 4), 0.5)]
    assert charts.trend_png("take_up_rate", moved, target=0.2) != first and len(drawn) == 2
    assert charts.trend_png("take_up_rate", points, target=0.3) != first and len(drawn) == 3


def test_a_chart_shows_its_first_and_last_days_whole():
    # The points sit at midnight of their day: without half a day either side, the first
    # and last points were cut in half at the plot's edges.
    from datetime import date

    from matplotlib.dates import date2num

    from monitoring import charts

    points = [charts.TrendPoint(date(2026, 3, d), 0.1 * d) for d in (2, 3, 4)]
    left, right = charts.trend_figure("take_up_rate", points).axes[0].get_xlim()
    assert left == pytest.approx(date2num(date(2026, 3, 2)) - 0.5, abs=1e-6)
    assert right == pytest.approx(date2num(date(2026, 3, 4)) + 0.5, abs=1e-6)
    only = [charts.TrendPoint(date(2026, 3, 2), 0.2)]
    left, right = charts.trend_figure("take_up_rate", only).axes[0].get_xlim()
    assert right - left == pytest.approx(1.0)  # one day measured: a day wide, not zero
