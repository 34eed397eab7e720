"""Beat's fixed schedule names tasks the workers have: a misspelt name would be sent
every interval and never run, with nothing failing but the job."""

from __future__ import annotations

from django.conf import settings

from arbiter.celery import app


def test_every_beat_entry_names_a_task_the_workers_know():
    app.loader.import_default_modules()  # as a worker does at start-up
    unknown = {
        name: entry["task"]
        for name, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if entry["task"] not in app.tasks
    }
    assert unknown == {}
    assert settings.CELERY_BEAT_SCHEDULE["recover-replay-checks"]["schedule"] == 60
