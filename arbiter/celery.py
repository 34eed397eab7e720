"""The Celery app. Configuration comes from Django settings prefixed ``CELERY_``.

With no ``CELERY_BROKER_URL`` the settings make tasks run in-process (eager), so the
embedded default (SQLite, no broker) needs no other service.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arbiter.settings.local")

app = Celery("arbiter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
