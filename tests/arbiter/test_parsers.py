"""JSON that Python's decoder or float conversion chokes on is malformed input: a 400 or a
field error, never a 500."""

from __future__ import annotations

import json

import pytest
from django.test import Client
from rest_framework.test import APIClient

from arbiter.parsers import MAX_DEPTH, JSONRefused, json_loads, too_deep
from governance.validation import is_finite_number


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_nesting_is_bounded_without_recursing():
    assert json_loads(nested(MAX_DEPTH)) is not None
    for depth in (MAX_DEPTH + 1, 50_000):
        with pytest.raises(JSONRefused, match="nested more than 100 levels"):
            json_loads(nested(depth))
    assert not too_deep({"a": [{"b": 1}]}) and too_deep(json.loads(nested(200)))


@pytest.mark.parametrize(
    ("value", "finite"),
    [
        (1, True),
        (2.5, True),
        (10**300, True),
        (10**400, False),
        (float("nan"), False),
        (float("inf"), False),
        (True, False),
        ("1", False),
    ],
)
def test_a_finite_number_is_one_a_float_holds(value, finite):
    assert is_finite_number(value) is finite


@pytest.mark.django_db
def test_the_registry_and_the_draft_editor_refuse_deep_content(maker, checker):
    from tests.governance.factories import note_version

    api = APIClient()
    api.force_authenticate(maker)
    deep = '{"content": {"text": ' + nested(5_000) + "}}"
    answer = api.generic(
        "POST", "/api/v1/registry/notes/n/versions/", deep, content_type="application/json"
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "parse_error"

    note_version(maker=maker, checker=checker)
    page = Client()
    page.force_login(maker)
    refused = page.post(
        "/registry/notes/house-rules/new/",
        {"content": '{"text": ' + nested(5_000) + "}", "change_note": "deep"},
    )
    assert refused.status_code == 400
    assert "The content was refused: nested more than 100 levels deep." in refused.content.decode()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"age": 40, "age": 17}', "the key 'age' appears twice in one object"),
        ('{"x": NaN}', "NaN is not a JSON number"),
        ('{"x": -Infinity}', "-Infinity is not a JSON number"),
        ('{"x": 1' + "0" * 5000 + "}", "an integer with more than 4,300 digits"),
        ('{"x": 1e400}', "the number 1e400 is too large (a float holds up to 1.8e308)"),
        ("[-2.5E+309]", "the number -2.5E+309 is too large"),
    ],
)
def test_json_python_would_read_loosely_or_choke_on_is_refused(text, why):
    with pytest.raises(JSONRefused) as refused:
        json_loads(text)
    assert why in str(refused.value)


@pytest.mark.django_db
def test_the_api_answers_such_bodies_with_a_parse_error(api_client_user):
    api = APIClient()
    api.force_authenticate(api_client_user)
    for body in (
        '{"deployment": "a", "deployment": "b"}',
        '{"x": 1' + "0" * 5000 + "}",
        '{"deployment": "a", "customer_id": "c", "features": {"income": 1e400}}',
    ):
        answer = api.generic("POST", "/api/v1/decisions/", body, content_type="application/json")
        assert answer.status_code == 400, answer.content
        assert answer.json()["error"]["code"] == "parse_error"
