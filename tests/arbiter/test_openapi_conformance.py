"""Every API operation answers as the OpenAPI schema says, whatever it is sent.

Schemathesis generates requests for each operation from the schema clients are given
(``/api/schema/``), valid and invalid, sends them as a person holding every role, signed
in (API keys cannot carry the checker and admin roles), and checks each answer: never a
server error, a documented status code and content type, and a body that matches the
documented schema. A client generated from the schema can trust it; an endpoint that
drifts from its schema fails here.

The examples are the same on every run (CI stays deterministic); ARBITER_FUZZ_EXPLORE=1
draws new ones each run, to look further.
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import Client, override_settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck
from hypothesis import settings as examples
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from arbiter.wsgi import application
from governance.roles import Role
from tests.ui.conftest import (  # noqa: F401 (fixtures)
    approved_model,
    cross_sell_deployment,
    register_model,
    trained_model,
    world,
)

SPEC = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(public=True)))
schema = schemathesis.openapi.from_dict(SPEC)
schema.app = application

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


CSRF_SECRET = "fuzz" * 8  # a CSRF cookie's secret: 32 characters from its alphabet


@pytest.fixture
def signed_in(world, make_user) -> dict[str, dict[str, str]]:  # noqa: F811
    """What a browser signed in as a person with every role sends: the session and CSRF
    cookies, and the CSRF header that unsafe methods need beside a session."""
    everyone = make_user("fuzz-all-roles", *Role.values)
    browser = Client()
    browser.force_login(everyone)
    return {
        "cookies": {
            settings.SESSION_COOKIE_NAME: browser.cookies[settings.SESSION_COOKIE_NAME].value,
            settings.CSRF_COOKIE_NAME: CSRF_SECRET,
        },
        "headers": {"X-CSRFToken": CSRF_SECRET},
    }


@pytest.fixture(autouse=True)
def _connection_kept_between_requests():
    """As Django's test client does: the WSGI handler would close the test's database
    connection when each request ends."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@schema.parametrize()
@examples(
    max_examples=40,
    deadline=None,
    derandomize=not os.environ.get("ARBITER_FUZZ_EXPLORE"),
    suppress_health_check=list(HealthCheck),
)
@override_settings(OPTIMISATION_MAX_CUSTOMERS=100, ALLOWED_HOSTS=["*"])
@pytest.mark.django_db
def test_every_operation_answers_as_its_schema_says(case, signed_in):
    case.call_and_validate(**signed_in, checks=CHECKS)
