"""Kinds without their own differ or presenter still get a readable diff and page."""

from __future__ import annotations

from governance.content_diff import content_changes, json_changes
from governance.kinds import Kind, kind_get
from governance.presentation import content_sections, display


def test_generic_diff_walks_paths():
    old = {"text": "be kind", "limits": {"a": 1, "b": 2}, "tags": ["x"]}
    new = {"text": "be kinder", "limits": {"a": 1, "c": 3}, "tags": ["x", "y"]}
    changes = json_changes(old, new)
    assert [c.text for c in changes] == [
        'text changed from "be kind" to "be kinder"',
        "limits.b removed",
        "limits.c added (3)",
        "tags changed",
    ]
    assert changes[-1].detail and '"y"' in changes[-1].new


def test_a_kind_without_a_differ_or_presenter_uses_the_generic_ones():
    note = kind_get("note")
    assert note.diff is None and note.present is None
    changes = content_changes(note, {"text": "a"}, {"text": "b"})
    assert [c.text for c in changes] == ['text changed from "a" to "b"']
    (section,) = content_sections(note, {"text": "<b>hi</b>"})
    assert '"text": "<b>hi</b>"' in section.code  # escaped by the template, not here


def _broken(*_args):
    raise KeyError("actions")


def test_a_failing_differ_or_presenter_falls_back_instead_of_hiding_the_version():
    kind = Kind(key="odd", slug="odds", label="odd", validate=dict, present=_broken, diff=_broken)
    assert [c.text for c in content_changes(kind, {"a": 1}, {"a": 2})] == ["a changed from 1 to 2"]
    assert content_sections(kind, {"a": 1})[0].title == "Content"


def test_display_writes_values_as_people_do():
    assert display(25000.0) == "25000"
    assert display(0.19) == "0.19"
    assert display(True) == "true"
    assert display(None) == "—"
    assert display(["a", "b"]) == "a, b"
    assert display({"b": 1, "a": 2}) == '{"a": 2, "b": 1}'


def test_formulas_in_a_change_are_marked_as_code():
    from governance.content_diff import formula_change

    (change,) = formula_change("rules[a].rule", "rule a", "x <= 1", "x <= 2")
    assert change.segments == [
        (False, "rule a changed from "),
        (True, "x <= 1"),
        (False, " to "),
        (True, "x <= 2"),
    ]
