"""What changed between two versions' content, as sentences a reviewer reads.

A kind's differ (``Kind.diff``) returns ``Change`` records; kinds without one get
``json_changes``, which walks both documents path by path. The building blocks here
(``value_changes``, ``keyed_changes``, ``formula_change``) are shared by the kinds'
differs so every kind words its changes the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from governance.kinds import Kind
from governance.presentation import display

ChangeKind = Literal["added", "removed", "changed"]


@dataclass(frozen=True)
class Change:
    """One change: ``field`` is the content path, ``text`` the sentence shown.

    ``detail`` asks the page to show ``old`` and ``new`` in full below the sentence, for
    values too long to read inline (a value formula).
    """

    field: str
    kind: ChangeKind
    text: str
    old: Any = None
    new: Any = None
    detail: bool = False

    @property
    def segments(self) -> list[tuple[bool, str]]:
        """``text`` cut at its back-ticks: (is_code, piece) pairs, so the page can set
        formulas in code type while escaping every piece as usual."""
        return [(i % 2 == 1, piece) for i, piece in enumerate(self.text.split("`")) if piece]


def shown(value: Any) -> str:
    """A value inside a sentence: text in quotes, everything else as ``display`` writes it."""
    if isinstance(value, str):
        return f'"{value}"'
    if value is None or value == []:
        return "none"
    return display(value)


def _same(old: Any, new: Any) -> bool:
    # 25000 and 25000.0 are the same bound; True and 1 are not the same value.
    if isinstance(old, bool) or isinstance(new, bool):
        return type(old) is type(new) and old == new
    return bool(old == new)


def value_changes(
    path: str,
    label: str,
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    keys: Iterable[str] | None = None,
    formulas: Iterable[str] = (),
    words: dict[str, str] | None = None,
) -> list[Change]:
    """Key-by-key changes of two flat objects, each sentence starting with ``label``.

    ``formulas`` are quoted in back-ticks (set as code on the page); ``words`` says a key
    in words ("use case").
    """
    formulas, words = set(formulas), words or {}
    names = list(keys) if keys is not None else _ordered_keys(old, new)
    prefix = f"{label}: " if label else ""
    out: list[Change] = []
    for key in names:
        where = f"{path}.{key}" if path else key
        spoken = words.get(key, key)
        if key not in old and key in new:
            if new[key] in ("", None, [], {}):
                continue
            out.append(
                Change(where, "added", f"{prefix}{spoken} added ({shown(new[key])})", new=new[key])
            )
        elif key in old and key not in new:
            if old[key] in ("", None, [], {}):
                continue
            out.append(Change(where, "removed", f"{prefix}{spoken} removed", old=old[key]))
        elif key in old and not _same(old[key], new[key]):
            if key in formulas:
                text = f"{prefix}{spoken} changed from `{old[key]}` to `{new[key]}`"
                out.append(Change(where, "changed", text, old[key], new[key]))
            else:
                text = f"{prefix}{spoken} changed from {shown(old[key])} to {shown(new[key])}"
                out.append(Change(where, "changed", text, old[key], new[key]))
    return out


def _ordered_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return list(old) + [k for k in new if k not in old]


def keyed_changes(
    path: str,
    noun: str,
    old: Any,
    new: Any,
    *,
    key: str,
    compare: Callable[[str, str, dict[str, Any], dict[str, Any]], list[Change]],
) -> list[Change]:
    """Changes of a list of objects identified by ``key`` (actions by id, limits by name).

    An entry present in one list only is ``added`` or ``removed``; entries in both are
    handed to ``compare(path, label, old_entry, new_entry)``. A changed order of the same
    entries is reported once, since it can decide ties.
    """
    old_list = [e for e in old or [] if isinstance(e, dict)]
    new_list = [e for e in new or [] if isinstance(e, dict)]
    old_by = {str(e.get(key)): e for e in old_list}
    new_by = {str(e.get(key)): e for e in new_list}
    out: list[Change] = []
    for name, entry in new_by.items():
        if name not in old_by:
            out.append(Change(f"{path}[{name}]", "added", f"{noun} {name} added", new=entry))
    for name, entry in old_by.items():
        if name not in new_by:
            out.append(Change(f"{path}[{name}]", "removed", f"{noun} {name} removed", old=entry))
    for name, entry in new_by.items():
        if name in old_by:
            out.extend(compare(f"{path}[{name}]", f"{noun} {name}", old_by[name], entry))
    kept_old = [n for n in old_by if n in new_by]
    kept_new = [n for n in new_by if n in old_by]
    if kept_old != kept_new:
        out.append(
            Change(
                path,
                "changed",
                f"order of {noun}s changed from {', '.join(kept_old)} to {', '.join(kept_new)}",
                kept_old,
                kept_new,
            )
        )
    return out


def formula_change(
    path: str, label: str, old: Any, new: Any, *, long: bool = False
) -> list[Change]:
    """A changed expression, quoted inline or (``long``) shown in full below."""
    if old == new:
        return []
    if old in (None, "") and new not in (None, ""):
        return [Change(path, "added", f"{label} added: `{new}`", new=new)]
    if new in (None, "") and old not in (None, ""):
        return [Change(path, "removed", f"{label} removed", old=old)]
    if long:
        return [Change(path, "changed", f"{label} changed", old, new, detail=True)]
    return [Change(path, "changed", f"{label} changed from `{old}` to `{new}`", old, new)]


def json_changes(old: Any, new: Any, path: str = "") -> list[Change]:
    """The generic differ: every leaf that was added, removed or changed, by its path."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[Change] = []
        for key in _ordered_keys(old, new):
            where = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(
                    Change(where, "added", f"{where} added ({shown(new[key])})", new=new[key])
                )
            elif key not in new:
                out.append(Change(where, "removed", f"{where} removed", old=old[key]))
            else:
                out.extend(json_changes(old[key], new[key], where))
        return out
    if _same(old, new):
        return []
    where = path or "content"
    if isinstance(old, dict | list) or isinstance(new, dict | list):
        text = f"{where} changed"
        return [
            Change(
                where,
                "changed",
                text,
                json.dumps(old, indent=2, ensure_ascii=False),
                json.dumps(new, indent=2, ensure_ascii=False),
                detail=True,
            )
        ]
    return [
        Change(where, "changed", f"{where} changed from {shown(old)} to {shown(new)}", old, new)
    ]


def content_changes(kind: Kind, old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """The kind's own diff of two contents, or the generic one when it has none or fails."""
    if kind.diff is not None:
        try:
            return kind.diff(old, new)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # a reviewer still gets the generic diff rather than no diff at all
    return json_changes(old, new)
