from django.apps import AppConfig


class DecisionsConfig(AppConfig):
    name = "decisions"
    verbose_name = "Decisions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from decisions import registry, ui_extensions

        registry.register_kinds()
        ui_extensions.register_ui_extensions()
