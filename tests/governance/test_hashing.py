"""The fast canonical JSON of the decision log's bulk writers is the canonical JSON.

Every logged decision's content hash is taken over ``canonical_json``; the optimisation
runs' writers compute it with ``canonical_json_plain`` (msgspec) instead, and
``verify_decisions`` recomputes it with ``canonical_json``. One byte of difference would
make a run's rows fail verification, so the two must agree on every value.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from governance.hashing import canonical_json, canonical_json_plain

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
# Control characters, quotes, backslashes, non-ASCII and line separators: every escape.
texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12
) | st.sampled_from(["1e5", "0.00001", "x0e", '\n\t\r\b\f"\\/', "\u2028", "\x7f", "é"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | finite_floats
    | st.floats(min_value=-1e-3, max_value=1e-3, allow_nan=False)
    | texts
)
plain = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(texts, inner, max_size=6),
    max_leaves=40,
)


@settings(max_examples=600, deadline=None)
@given(plain)
def test_the_fast_encoding_equals_the_canonical_one_on_any_plain_value(value) -> None:
    assert canonical_json_plain(value) == canonical_json(value)


@pytest.mark.parametrize(
    "number",
    [
        1e-4,
        9.99e-5,  # Python: 9.99e-05; msgspec: 0.0000999
        1e-5,
        -2.5e-5,
        1e-7,
        5e-324,
        2.2250738585072014e-308,
        9999999999999998.0,
        1e16,  # Python: 1e+16; msgspec: 1e16
        -1.2345678901234568e17,
        1.7976931348623157e308,
        0.1,
        -0.0,
        0.0,
        123.00001,
    ],
)
def test_numbers_python_writes_with_an_exponent_come_out_as_python_writes_them(number) -> None:
    value = {"b": [number, {"z": number, "a": "text"}], "a": number}
    assert canonical_json_plain(value) == canonical_json(value)


def test_a_million_floats_of_every_magnitude_encode_as_python_writes_them() -> None:
    rng = np.random.default_rng(11)
    bits = rng.integers(0, 2**63, size=600_000, dtype=np.int64).view(np.float64)
    scaled = rng.standard_normal(400_000) * 10.0 ** rng.integers(-9, 19, 400_000)
    numbers = [x for x in np.concatenate([bits, scaled]).tolist() if math.isfinite(x)]
    for start in range(0, len(numbers), 2_000):
        part = numbers[start : start + 2_000]
        assert canonical_json_plain(part) == canonical_json(part)


def test_values_it_cannot_encode_the_canonical_way_raise_as_canonical_json_does() -> None:
    # Integer keys: sorted output needs string keys; json sorts and converts them.
    assert canonical_json_plain({2: "b", 1: "a"}) == canonical_json({2: "b", 1: "a"})
    with pytest.raises(TypeError):
        canonical_json_plain({"a": object()})
    # Text that is not UTF-8 (a lone surrogate, from a JSON "\ud800" escape) either way.
    for value in ("a\ud800", {"k": "a\ud800"}):
        with pytest.raises(UnicodeEncodeError):
            canonical_json(value)
        with pytest.raises(UnicodeEncodeError):
            canonical_json_plain(value)
