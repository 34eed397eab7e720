from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"
    default_auto_field = "django.db.models.BigAutoField"
    # Run by ``manage.py demo`` after the governed content (decisions.demo_setup); a dotted
    # path, imported only then, so the simulator stays out of web start-up.
    demo_step = "monitoring.demo_activity.demo_outcomes_load"

    def ready(self) -> None:
        from monitoring import alert_rules, kpi_targets, report_recipients, ui_extensions

        kpi_targets.register_kpi_targets_kind()
        alert_rules.register_alert_rules_kind()
        report_recipients.register_report_recipients_kind()
        ui_extensions.register_ui_extensions()
        # Drift: its pages' link and dashboard panel; its Celery tasks live in a module of
        # their own, imported here so that every worker registers them.
        from monitoring import drift_tasks, drift_ui_extensions  # noqa: F401

        drift_ui_extensions.register_drift_ui_extensions()
