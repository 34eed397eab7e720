"""The executive report: KPIs against targets with trend charts, champion and challenger,
drift, alerts, pending reviews and optimisation runs, by e-mail, archived.

``report_send`` builds the report for the active ``report_recipients`` version of a report
(``executive``), sends it through Django's e-mail backend (``EMAIL_URL``; SMTP in
production) and archives it as an ``ExecutiveReport``: the whole MIME message, its HTML and
text parts and the figures it showed. The message is ``multipart/related``: a
``multipart/alternative`` (text/plain, then text/html) followed by one ``image/png`` part
per chart, each with the ``Content-ID`` the HTML's ``cid:`` reference names. The HTML uses
tables and inline styles only, no scripts, so common mail clients show it as designed.

``deployment_overview`` computes one deployment's section; the monitoring pages show the
same figures and charts.
"""

from __future__ import annotations

import base64
import email
import email.policy
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.mime.image import MIMEImage
from email.utils import format_datetime, make_msgid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.mail import EmailMultiAlternatives
from django.db.models import Case, QuerySet, When
from django.template.loader import render_to_string
from django.utils import timezone

from decisions.models import DecisionBlock, LogVerification, OptimisationRun
from decisions.selectors import deployment_active_list
from governance.audit import audit_chain_verify
from governance.exceptions import NotFound, PreconditionFailed
from governance.kinds import kind_get
from governance.models import AuditEvent, Item, Version, VersionStatus
from governance.roles import Role, require_role
from governance.selectors import version_review_queue
from monitoring import charts
from monitoring.alerts import NO_DRIFT_REPORT, SYSTEM_READER, drift_latest
from monitoring.kpis import CHAMPION, KPIS
from monitoring.models import Alert, AlertStatus, ExecutiveReport, ReportStatus, ReportTrigger
from monitoring.report_recipients import DEFAULT_REPORT
from monitoring.report_recipients import KIND as RECIPIENTS_KIND
from monitoring.selectors import KPI_READER_ROLES, kpi_report

logger = logging.getLogger(__name__)

#: Who may send a report now (the UI button, ``send_report --user``).
SENDER_ROLES = frozenset({Role.ADMIN})
#: Shown even without a target.
HEADLINE_KPIS = (
    "decision_volume",
    "profit",
    "take_up_rate",
    "recovery_rate",
    "complaint_rate",
)
MAX_CHARTS = 6
RECENT_RUNS = 5
OLDEST_REVIEWS = 10
#: A scheduled send within this long of the last one is a duplicate delivery of the
#: beat message (acks_late re-delivers after a worker loss), not a new report.
SCHEDULE_DEDUP = timedelta(minutes=30)


@dataclass
class Chart:
    cid: str
    key: str
    label: str
    alt: str
    png: bytes
    points: list[charts.TrendPoint] = field(default_factory=list)
    target: float | None = None

    @property
    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")

    @property
    def rows(self) -> list[tuple[Any, str]]:
        return [(p.start, charts.format_kpi(self.key, p.value)) for p in self.points]


# --- figures --------------------------------------------------------------------------


def _interval(key: str, rate: float | None, low: float | None, high: float | None) -> str:
    if rate is None:
        return "—"
    text = charts.format_kpi(key, rate)
    if low is not None and high is not None:
        text += f" ({charts.format_kpi(key, low)} to {charts.format_kpi(key, high)})"
    return text


def _points(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f} pp"


def _arm_text(key: str, arm: dict[str, Any] | None) -> tuple[str, str]:
    """An arm's rate with its interval, and its successes/trials."""
    if arm is None:
        return "—", "—"
    return (
        _interval(key, arm["rate"], arm["low"], arm["high"]),
        f"{arm['successes']}/{arm['trials']}",
    )


def arm_rows(
    arms: dict[str, Any], use_case: str | None = None, targeted: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """Champion against each challenger, per rate KPI with something measured that means
    something for the deployment's use case or has a governed target."""
    rows = []
    targeted = set(targeted)
    for entry in arms.get("rates", []):
        key = entry["kpi"]
        shown = key in targeted or KPIS[key].applies_to(use_case)
        if not shown or not any(a["trials"] for a in entry["arms"]):
            continue
        by_arm = {a["arm"]: a for a in entry["arms"]}
        champion, champion_n = _arm_text(key, by_arm.get(CHAMPION))
        for difference in entry["differences"] or [None]:
            arm = difference["arm"] if difference else "—"
            challenger, challenger_n = _arm_text(key, by_arm.get(arm))
            measured = difference is not None and difference["difference"] is not None
            rows.append(
                {
                    "key": key,
                    "label": KPIS[key].label,
                    "champion": champion,
                    "champion_n": champion_n,
                    "arm": arm,
                    "challenger": challenger,
                    "challenger_n": challenger_n,
                    "difference": (
                        f"{_points(difference['difference'])} ({_points(difference['low'])} "
                        f"to {_points(difference['high'])})"
                        if measured
                        else "—"
                    ),
                }
            )
    return rows


def deployment_use_case(deployment: str) -> str | None:
    """The use case of the strategy the deployment's active (else latest) version decides
    with: which KPIs mean something for it. None when unknown."""
    version = (
        Version.objects.filter(item__kind="deployment", item__name=deployment)
        .order_by(
            # the active version first, then the newest
            Case(When(status=VersionStatus.ACTIVE, then=0), default=1),
            "-number",
        )
        .only("content")
        .first()
    )
    reference = version.content.get("strategy") if version else None
    if not isinstance(reference, dict):
        return None
    strategy = (
        Version.objects.filter(
            item__kind="strategy", item__name=reference.get("name"), number=reference.get("version")
        )
        .only("content")
        .first()
    )
    use_case = strategy.content.get("use_case") if strategy else None
    return use_case if isinstance(use_case, str) else None


def deployment_models(deployment: str) -> list[str]:
    """Names of the models the deployment's active version uses (every arm's strategy)."""
    version = (
        Version.objects.filter(
            item__kind="deployment", item__name=deployment, status=VersionStatus.ACTIVE
        )
        .only("content")
        .first()
    )
    if version is None:
        return []
    names: set[str] = set()
    for arm in [version.content, *version.content.get("challengers", [])]:
        reference = arm.get("strategy")
        if not isinstance(reference, dict):
            continue
        strategy = Version.objects.filter(
            item__kind="strategy", item__name=reference.get("name"), number=reference.get("version")
        ).first()
        for prediction in (strategy.content if strategy else {}).get("predictions", []):
            model = prediction.get("model")
            if isinstance(model, dict) and model.get("name"):
                names.add(str(model["name"]))
    return sorted(names)


def drift_rows(deployment: str) -> list[dict[str, str]]:
    rows = []
    for model in deployment_models(deployment):
        report = drift_latest(model)
        if report is None:
            rows.append({"model": model, "status": NO_DRIFT_REPORT, "share": "—", "psi": "—"})
            continue
        share = report.share_drifted
        rows.append(
            {
                "model": model,
                "status": f"{report.get_status_display()}, window ending "
                f"{report.window_end:%d %b %Y %H:%M}",
                "share": "—" if share is None else f"{100 * share:.1f}% of features drifted",
                "psi": "—" if report.psi_max is None else f"largest PSI {report.psi_max:.3f}",
            }
        )
    return rows


def _kpi_rows(report: dict[str, Any], keys: list[str]) -> list[dict[str, Any]]:
    words = {"at_least": "at least", "at_most": "at most"}
    rows = []
    for row in report["kpis"]:
        if row["key"] not in keys:
            continue
        if row["met"] is True:
            status = "met"
        elif row["met"] is False:
            status = "missed"
        elif row["target"] is None:
            status = "no target"
        else:
            status = "not measured"
        target = charts.format_kpi(row["key"], row["target"])
        rows.append(
            {
                **{k: row[k] for k in ("key", "label", "family", "value", "target", "met")},
                "value_text": charts.format_kpi(row["key"], row["value"]),
                "target_text": (
                    f"{words.get(row['direction'], '')} {target}"
                    if row["target"] is not None
                    else "—"
                ),
                "status": status,
            }
        )
    return rows


def deployment_overview(
    *,
    actor: Any,
    deployment: str,
    since: datetime,
    until: datetime,
    all_kpis: bool = False,
) -> dict[str, Any]:
    """One deployment's KPIs against targets, trend charts (PNG), the champion/challenger
    table with 95% intervals, drift per model, alerts and latest optimisation runs.

    ``all_kpis`` lists every KPI (the monitoring page); else those with a target and the
    headline ones (the e-mail). Raises what ``kpi_report`` raises.
    """
    report = kpi_report(actor=actor, deployment=deployment, since=since, until=until)
    targeted = [row["key"] for row in report["kpis"] if row["target"] is not None]
    use_case = deployment_use_case(deployment)
    # A KPI with a governed target is always shown; others when they mean something for
    # the use case (no take-up of offers in collections, no cures in onboarding).
    shown = [
        k
        for k in KPIS
        if k in targeted or (KPIS[k].applies_to(use_case) and (all_kpis or k in HEADLINE_KPIS))
    ]
    headline = [k for k in HEADLINE_KPIS if k not in targeted and KPIS[k].applies_to(use_case)]
    charted = (targeted + headline)[:MAX_CHARTS]
    by_key = {row["key"]: row for row in report["kpis"]}
    chart_list = []
    # Content-IDs are meant to be unique world-wide: a random part per report.
    token = secrets.token_hex(6)
    slug = re.sub(r"[^a-z0-9-]", "-", deployment.lower())
    for i, key in enumerate(charted, start=1):
        points = charts.points_from_series(by_key[key]["daily"])
        target = by_key[key]["target"]
        chart_list.append(
            Chart(
                cid=f"kpi{i}.{slug}.{token}@arbiter",
                key=key,
                label=KPIS[key].label,
                alt=charts.trend_description(key, points, target=target),
                png=charts.trend_png(key, points, target=target),
                points=points,
                target=target,
            )
        )
    # The same KPIs week by week (weeks start on Monday, UTC), as a table.
    weeks = [point["start"] for point in by_key[charted[0]]["weekly"]] if charted else []
    weekly = {
        "labels": [KPIS[key].label for key in charted],
        "rows": [
            (
                week,
                [charts.format_kpi(key, by_key[key]["weekly"][i]["value"]) for key in charted],
            )
            for i, week in enumerate(weeks)
        ],
    }
    alerts = list(
        Alert.objects.select_related("rules_version")
        .filter(deployment_name=deployment)
        .filter(status=AlertStatus.OPEN)
        .order_by("-opened_at")
    ) + list(
        Alert.objects.select_related("rules_version")
        .filter(deployment_name=deployment, status=AlertStatus.CLEARED, opened_at__gte=since)
        .order_by("-opened_at")[:10]
    )
    runs = list(
        OptimisationRun.objects.filter(deployment_name=deployment).order_by("-created_at", "-pk")[
            :RECENT_RUNS
        ]
    )
    return {
        "name": deployment,
        "report": report,
        "decisions": report["decisions"],
        "outcomes": report["outcomes"],
        "targets_version": report["targets_version"],
        "kpis": _kpi_rows(report, shown),
        "missed": sum(1 for row in report["kpis"] if row["met"] is False),
        "met": sum(1 for row in report["kpis"] if row["met"] is True),
        "charts": chart_list,
        "weekly": weekly,
        "shares": [
            {**s, "share_text": charts.format_kpi("challenger_share", s["share"])}
            for s in report["arms"]["shares"]
        ],
        "arms": arm_rows(report["arms"], use_case, targeted),
        "drift": drift_rows(deployment),
        "alerts": alerts,
        "runs": runs,
    }


def pending_reviews() -> dict[str, Any]:
    queue = version_review_queue()
    rows = []
    for version in queue[:OLDEST_REVIEWS]:
        try:
            label = kind_get(version.item.kind).label
        except NotFound:
            label = version.item.kind
        rows.append(
            {
                "kind": label,
                "name": version.item.name,
                "number": version.number,
                "submitted_at": version.submitted_at,
                "submitted_by": getattr(version.submitted_by, "username", ""),
            }
        )
    return {"count": queue.count(), "oldest": rows}


def log_heads() -> dict[str, Any]:
    """The heads of the decision log and the audit chain as the report is built, each
    with what is known of its integrity.

    Mailed to the recipients, the heads are a record outside the database: ``verify_decisions
    --head`` and ``verify_audit --head`` later prove that the logs still hold everything
    they held then, which no check inside the database can (a log cut back to an earlier,
    intact state verifies as intact). A head is only worth keeping if the log up to it was
    intact, so the report says so:

    - the audit chain is re-verified here (its events only: thousands of rows, well under
      a second); a broken chain mails no head, only what is wrong (``verify_audit`` gives
      none either);
    - the decision log is too large to re-hash for a report (0.1 ms a decision), so the
      report gives the latest ``LogVerification`` (the daily check's, or anyone's) and
      whether it covered the mailed head.
    """
    block = DecisionBlock.objects.order_by("-number").first()
    check = LogVerification.objects.order_by("-started_at", "-pk").first()
    last_check = (
        None
        if check is None
        else {
            "at": check.started_at,
            "ok": check.ok,
            "blocks": check.blocks,
            "first_bad_block": check.first_bad_block,
            "problem": check.problems[0] if check.problems else "",
        }
    )
    decision_log = {
        "head": None
        if block is None
        else {"block": block.number, "hash": block.hash, "sealed_at": block.sealed_at},
        "last_check": last_check,
        # Blocks sealed after the last check (or every block, before any check) have had
        # their rows re-hashed by no one yet.
        "unchecked_blocks": 0
        if block is None
        else block.number - (check.blocks if check is not None and check.ok else 0),
    }
    chain = audit_chain_verify(versions=False, artifacts=False)
    event = (
        None
        if chain.head_seq is None
        else AuditEvent.objects.filter(seq=chain.head_seq).only("created_at").first()
    )
    audit_chain = {
        "head": None
        if chain.head_seq is None or chain.head_seq == 0
        else {
            "event": chain.head_seq,
            "hash": chain.head_hash,
            "recorded_at": event.created_at if event is not None else None,
        },
        "ok": chain.ok,
        "problem": chain.problems[0] if chain.problems else "",
    }
    return {"decision_log": decision_log, "audit_chain": audit_chain}


def log_heads_alarm(heads: dict[str, Any]) -> str:
    """A sentence for the subject line when a log failed its check, else ""."""
    failed = []
    check = heads["decision_log"]["last_check"]
    if check is not None and not check["ok"]:
        failed.append("decision log")
    if not heads["audit_chain"]["ok"]:
        failed.append("audit chain")
    return f"{' and '.join(failed)} NOT intact" if failed else ""


def _plain(value: Any) -> Any:
    """``value`` with its datetimes as ISO text, for the archived JSON summary."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value.isoformat() if isinstance(value, datetime) else value


# --- the message ----------------------------------------------------------------------


@dataclass
class BuiltReport:
    subject: str
    text: str
    html: str
    charts: list[Chart]
    summary: dict[str, Any]
    since: datetime
    until: datetime


def recipients_active(report: str) -> Version:
    version = (
        Version.objects.select_related("item")
        .filter(item__kind=RECIPIENTS_KIND, item__name=report, status=VersionStatus.ACTIVE)
        .first()
    )
    if version is None:
        raise PreconditionFailed(
            f"The {report} report has no active report_recipients version: draft one, have "
            "it approved and activated (Report recipients in the registry).",
            code="no_report_recipients",
            details={"report": report},
        )
    return version


def report_build(*, recipients: Version, now: datetime) -> BuiltReport:
    """Compute every section and render the HTML and text parts (no sending)."""
    content = recipients.content
    until = now
    since = now - timedelta(days=content.get("window_days", 7))
    names = content.get("deployments") or [v.item.name for v in deployment_active_list()]
    deployments = []
    missing = []
    for name in names:
        if not Item.objects.filter(kind="deployment", name=name).exists():
            missing.append(name)
            continue
        deployments.append(
            deployment_overview(actor=SYSTEM_READER, deployment=name, since=since, until=until)
        )
    reviews = pending_reviews()
    heads = log_heads()
    open_alerts = sum(1 for d in deployments for a in d["alerts"] if a.status == AlertStatus.OPEN)
    subject = (
        f"Arbiter executive report, {since:%d %b} to {until:%d %b %Y}: "
        f"{sum(d['missed'] for d in deployments)} KPIs off target, {open_alerts} open alerts"
    )
    alarm = log_heads_alarm(heads)
    if alarm:
        subject += f"; {alarm}"
    context = {
        "subject": subject,
        "since": since,
        "until": until,
        "deployments": deployments,
        "missing": missing,
        "reviews": reviews,
        "heads": heads,
        "open_alerts": open_alerts,
        "report_name": recipients.item.name,
        "recipients_version": recipients,
    }
    summary = {
        "deployments": {
            d["name"]: {
                "decisions": d["decisions"],
                "outcomes": d["outcomes"],
                "kpis": {
                    row["key"]: {"value": row["value"], "target": row["target"], "met": row["met"]}
                    for row in d["kpis"]
                },
                "open_alerts": sum(1 for a in d["alerts"] if a.status == AlertStatus.OPEN),
                "drift": d["drift"],
                "runs": [{"id": r.pk, "status": r.status, "gap": r.gap} for r in d["runs"]],
            }
            for d in deployments
        },
        "pending_reviews": reviews["count"],
        "missing_deployments": missing,
        "heads": _plain(heads),
    }
    return BuiltReport(
        subject=subject,
        text=render_to_string("emails/executive_report.txt", context),
        html=render_to_string("emails/executive_report.html", context),
        charts=[chart for d in deployments for chart in d["charts"]],
        summary=summary,
        since=since,
        until=until,
    )


def report_message(built: BuiltReport, *, recipients: list[str], now: datetime) -> Any:
    """The e-mail: related(alternative(text, html), png, png, ...)."""
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "arbiter.localhost"
    message = EmailMultiAlternatives(
        subject=built.subject,
        body=built.text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        headers={"Message-ID": make_msgid(domain=domain), "Date": format_datetime(now)},
    )
    message.attach_alternative(built.html, "text/html")
    message.mixed_subtype = "related"
    for chart in built.charts:
        image = MIMEImage(chart.png, "png")
        image.add_header("Content-ID", f"<{chart.cid}>")
        image.add_header("Content-Disposition", "inline", filename=f"{chart.key}.png")
        message.attach(image)
    return message


def report_send(
    *,
    actor: AbstractBaseUser | None,
    report: str = DEFAULT_REPORT,
    trigger: str = ReportTrigger.SCHEDULE,
    now: datetime | None = None,
) -> ExecutiveReport | None:
    """Build, send and archive the report; the archive row records a failure too.

    ``actor`` None is the schedule or the operator's ``manage.py send_report``; a person
    must be an admin. A scheduled send within ``SCHEDULE_DEDUP`` of the last scheduled one
    is skipped (None): a re-delivered beat message must not mail the board twice. Holds no
    lock while sending. Raises ``PermissionDenied`` and ``PreconditionFailed``
    (``no_report_recipients``).
    """
    if actor is not None:
        require_role(actor, SENDER_ROLES, action="send the executive report")
    now = now or timezone.now()
    recipients = recipients_active(report)
    if (
        trigger == ReportTrigger.SCHEDULE
        and ExecutiveReport.objects.filter(
            report_name=report,
            trigger=ReportTrigger.SCHEDULE,
            status=ReportStatus.SENT,
            created_at__gt=now - SCHEDULE_DEDUP,
        ).exists()
    ):
        logger.info("report %s: sent less than %s ago; skipped", report, SCHEDULE_DEDUP)
        return None
    built = report_build(recipients=recipients, now=now)
    addresses = list(recipients.content["recipients"])
    message = report_message(built, recipients=addresses, now=now)
    status, error, sent_at = ReportStatus.SENT, "", None
    try:
        message.send(fail_silently=False)
        sent_at = timezone.now()
    except Exception as exc:  # any transport error is archived and shown, not raised
        logger.error("report %s: sending failed: %s", report, exc)
        status, error = ReportStatus.FAILED, f"{type(exc).__name__}: {exc}"
    return ExecutiveReport.objects.create(
        report_name=report,
        recipients_version=recipients,
        trigger=trigger,
        sent_by=actor if actor is not None else None,
        status=status,
        created_at=now,
        sent_at=sent_at,
        since=built.since,
        until=built.until,
        recipients=addresses,
        subject=built.subject,
        text_body=built.text,
        html_body=built.html,
        message=message.message().as_string(),
        summary=built.summary,
        error=error,
    )


# --- the archive ----------------------------------------------------------------------


def report_list(*, actor: AbstractBaseUser) -> QuerySet[ExecutiveReport]:
    require_role(actor, KPI_READER_ROLES, action="read executive reports")
    return ExecutiveReport.objects.select_related("sent_by", "recipients_version")


def report_get(*, actor: AbstractBaseUser, report_id: int) -> ExecutiveReport:
    report = report_list(actor=actor).filter(pk=report_id).first()
    if report is None:
        raise NotFound(f"There is no report {report_id}.")
    return report


def report_html_for_browser(report: ExecutiveReport) -> str:
    """The archived HTML with each ``cid:`` image replaced by a data URI from the stored
    message, so a browser shows what the mail client showed."""
    parsed = email.message_from_string(report.message, policy=email.policy.default)
    images = {}
    for part in parsed.walk():
        cid = part.get("Content-ID")
        if cid and part.get_content_type() == "image/png":
            payload = part.get_payload(decode=True) or b""
            images[cid.strip("<>")] = "data:image/png;base64," + base64.b64encode(payload).decode(
                "ascii"
            )
    return re.sub(
        r"cid:([^\"'\s>]+)",
        lambda match: images.get(match.group(1), match.group(0)),
        report.html_body,
    )
