"""The Django project: settings, root URLs, the Celery app and the API error handler."""

from arbiter.celery import app as celery_app

__all__ = ("celery_app",)
