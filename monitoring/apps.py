from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"
    default_auto_field = "django.db.models.BigAutoField"
    # Run by ``manage.py demo`` after the governed content (decisions.demo_setup); a dotted
    # path, imported only then, so the simulator stays out of web start-up.
    demo_step = "monitoring.demo_activity.demo_outcomes_load"

    def ready(self) -> None:
        from monitoring import kpi_targets

        kpi_targets.register_kpi_targets_kind()
