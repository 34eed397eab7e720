from django.apps import AppConfig
from django.db.models.signals import post_migrate


class GovernanceConfig(AppConfig):
    name = "governance"
    verbose_name = "Governance"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from governance.permissions import grant_role_permissions
        from governance.sign_in import connect_lockout_log

        connect_lockout_log()

        # Model permissions exist only after migrate has run, so roles get theirs then.
        post_migrate.connect(grant_role_permissions, sender=self)
