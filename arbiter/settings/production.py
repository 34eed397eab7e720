"""Production settings: DEBUG off, a secret key from the environment, HTTPS everywhere.

``manage.py check --deploy --settings=arbiter.settings.production`` passes with no
warning (tests/arbiter/test_settings.py).
"""

import os

os.environ["DEBUG"] = "false"

from arbiter.settings.base import *  # noqa: F403
from arbiter.settings.base import env

if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:  # noqa: F405
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters of random text.")

# TLS ends at the load balancer, which sets X-Forwarded-Proto (and X-Forwarded-For, whose
# last address is the client's as the proxy saw it: sign-in lockouts count by it).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CLIENT_ADDRESS_FROM_PROXY = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# Collected at image build time (platform/Dockerfile); hashed names can be cached forever.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
