"""``Authorization: Api-Key <prefix>.<secret>`` for downstream systems.

Every request reads the key, its user and the user's roles afresh (nothing is cached between
requests, so a revoked key, a deactivated user or a withdrawn role counts from the next
request on), and reads them in one round trip: the key joined to its user and the user's
groups, one row per group. The statement is written once rather than compiled by the ORM on
every request: on the decision endpoint the ORM's query building cost more than the
database's work (about 0.5 ms of the 0.8 ms), and the role query was a second round trip
(tests/governance/test_authentication_fast.py pins both). On PostgreSQL it runs prepared
(``arbiter.db.prepared_cursor``): planning it cost more than running it.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from arbiter.db import prepared_cursor
from governance.models import ApiKey
from governance.roles import KEYLESS_ROLES, Role, the_roles
from governance.services import api_key_hash

KEYWORD = "Api-Key"
# Writing last_used_at on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=5)
logger = logging.getLogger(__name__)


_Converter = Callable[[Any, Any, BaseDatabaseWrapper], Any]


@dataclass(frozen=True)
class _KeyLookup:
    """The one statement that loads a key, its user and the user's group names."""

    sql: str
    key_fields: Sequence[Field]
    user_fields: Sequence[Field]
    converters: Sequence[tuple[int, Any, list[_Converter]]]
    """(position, column, converters) for the columns a backend returns in its own form
    (SQLite's datetimes and booleans), applied as the ORM applies them."""


_lookups: dict[tuple[str, str], _KeyLookup] = {}


def _key_lookup(connection: BaseDatabaseWrapper) -> _KeyLookup:
    cache_key = (connection.alias, connection.vendor)
    lookup = _lookups.get(cache_key)
    if lookup is not None:
        return lookup
    user_model = get_user_model()
    groups = user_model._meta.get_field("groups")
    group_model = groups.related_model
    membership = groups.remote_field.through._meta.db_table
    qn = connection.ops.quote_name
    key_table, user_table = ApiKey._meta.db_table, user_model._meta.db_table
    key_fields = list(ApiKey._meta.concrete_fields)
    user_fields = list(user_model._meta.concrete_fields)
    columns = [f"k.{qn(f.column)}" for f in key_fields]
    columns += [f"u.{qn(f.column)}" for f in user_fields]
    columns.append(f"g.{qn(group_model._meta.get_field('name').column)}")
    user_pk = qn(user_model._meta.pk.column)
    key_user = qn(ApiKey._meta.get_field("user").column)
    key_prefix = qn(ApiKey._meta.get_field("prefix").column)
    member_user, member_group = qn(groups.m2m_column_name()), qn(groups.m2m_reverse_name())
    group_pk = qn(group_model._meta.pk.column)
    # Only quoted names from the models' metadata go into the text; the prefix is a parameter.
    sql = (
        f"SELECT {', '.join(columns)} FROM {qn(key_table)} k "  # noqa: S608
        f"INNER JOIN {qn(user_table)} u ON u.{user_pk} = k.{key_user} "
        f"LEFT OUTER JOIN {qn(membership)} m ON m.{member_user} = u.{user_pk} "
        f"LEFT OUTER JOIN {qn(group_model._meta.db_table)} g ON g.{group_pk} = m.{member_group} "
        f"WHERE k.{key_prefix} = %s"
    )
    converters = []
    for index, (field, table) in enumerate(
        [(f, key_table) for f in key_fields] + [(f, user_table) for f in user_fields]
    ):
        column = field.get_col(table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((index, column, found))
    lookup = _KeyLookup(sql, key_fields, user_fields, converters)
    _lookups[cache_key] = lookup
    return lookup


def api_key_load(prefix: str, *, using: str = "default") -> ApiKey | None:
    """The key with ``prefix``, its ``user``, and the user's roles, read in one query.

    The roles are left where ``governance.roles.roles_of`` looks first, so the services'
    role checks during this request ask the database nothing more. None for no such key.
    """
    connection = connections[using]
    lookup = _key_lookup(connection)
    with prepared_cursor(using) as cursor:
        cursor.execute(lookup.sql, [prefix])
        rows = cursor.fetchall()
    if not rows:
        return None
    values = list(rows[0][:-1])
    for index, column, converters in lookup.converters:
        for converter in converters:
            values[index] = converter(values[index], column, connection)
    split = len(lookup.key_fields)
    key = ApiKey.from_db(using, [f.attname for f in lookup.key_fields], values[:split])
    user = get_user_model().from_db(using, [f.attname for f in lookup.user_fields], values[split:])
    names = {row[-1] for row in rows}
    user._arbiter_roles = frozenset(name for name in Role.values if name in names)
    key.user = user
    return key


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
        row = api_key_load(prefix)
        if row is None or not hmac.compare_digest(row.key_hash, api_key_hash(key)):
            raise exceptions.AuthenticationFailed("Invalid API key.")
        if row.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This API key was revoked.")
        now = timezone.now()
        if row.expires_at is not None and now >= row.expires_at:
            raise exceptions.AuthenticationFailed(
                f"This API key expired at {row.expires_at:%Y-%m-%d %H:%M} UTC; ask an "
                "administrator for a new one."
            )
        if not row.user.is_active:
            raise exceptions.AuthenticationFailed("The key's user is deactivated.")
        keyless = sorted(row.user._arbiter_roles & KEYLESS_ROLES)
        if keyless:
            # Refused, not narrowed: a client that silently lost its rights would fail
            # later and further from the cause.
            raise exceptions.AuthenticationFailed(
                f"This API key's user, {row.user.get_username()}, holds "
                f"{the_roles(keyless)}, which API keys cannot carry: sign in to "
                "approve or administer, and give the client an account without it."
            )
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=row.pk).update(last_used_at=now)
            warn = timedelta(days=settings.API_KEY_WARN_DAYS)
            if row.expires_at is not None and row.expires_at - now < warn:
                logger.warning(
                    "API key %s of %s expires at %s UTC: issue a new one and move the "
                    "client to it (manage.py create_api_key)",
                    row.prefix,
                    row.user.get_username(),
                    f"{row.expires_at:%Y-%m-%d %H:%M}",
                )
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
