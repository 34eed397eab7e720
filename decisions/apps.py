from django.apps import AppConfig


class DecisionsConfig(AppConfig):
    name = "decisions"
    verbose_name = "Decisions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from decisions import checks, registry, ui_extensions  # noqa: F401 (checks registers)
        from decisions.models import json_columns_as_text

        connection_created.connect(json_columns_as_text, dispatch_uid="decisions-json-as-text")
        registry.register_kinds()
        ui_extensions.register_ui_extensions()
