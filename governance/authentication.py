"""``Authorization: Api-Key <prefix>.<secret>`` for downstream systems."""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from governance.models import ApiKey
from governance.services import api_key_hash

KEYWORD = "Api-Key"
# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, key = header.partition(" ")
        if scheme.lower() != KEYWORD.lower():
            return None
        key = key.strip()
        prefix, dot, _secret = key.partition(".")
        if not dot or not prefix:
            raise exceptions.AuthenticationFailed("Malformed API key.")
        row = ApiKey.objects.select_related("user").filter(prefix=prefix).first()
        if row is None or not hmac.compare_digest(row.key_hash, api_key_hash(key)):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if row.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key was revoked.")
        if not row.user.is_active:
            raise exceptions.AuthenticationFailed("The key's user is deactivated.")
        now = timezone.now()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
        return row.user, row

    def authenticate_header(self, request: Request) -> str:
        # A WWW-Authenticate header makes DRF answer 401 (not 403) to anonymous calls.
        return KEYWORD


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "governance.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "Authorization: Api-Key <key> (keys from manage.py create_api_key)",
        }
