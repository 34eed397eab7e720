"""Test settings: the base settings with fast password hashing and a throw-away artifact root."""

import os
import tempfile

os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault("ARTIFACT_ROOT", tempfile.mkdtemp(prefix="arbiter-test-artifacts-"))
os.environ.setdefault("STATIC_ROOT", tempfile.mkdtemp(prefix="arbiter-test-static-"))

from arbiter.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# Tests call tasks in-process; the few that need real workers start them with the broker
# from CELERY_BROKER_URL (CI sets it to the local Redis) and configure them explicitly.
CELERY_TASK_ALWAYS_EAGER = True

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not shared-cache memory: concurrent tests then wait on locks as a real
    # SQLite deployment does (busy timeout) instead of failing with "table is locked".
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.mkdtemp(prefix="arbiter-test-db-"), "test.sqlite3")
    }

# The API takes JSON bodies (the two uploads say multipart themselves): the test client
# sends JSON unless a test asks for multipart, as a client of the API does.
REST_FRAMEWORK = {**REST_FRAMEWORK, "TEST_REQUEST_DEFAULT_FORMAT": "json"}  # noqa: F405
