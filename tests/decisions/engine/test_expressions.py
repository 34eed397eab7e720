"""Tests for the expression language of strategies and constraint sets.

The property tests generate expression trees, render them to text (fully and minimally
parenthesised) and check that parsing + evaluation agrees with computing the same tree directly
with numpy: the minimal rendering is what really exercises the parser's precedence rules.
"""

from __future__ import annotations

import math
import pickle
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from decisions.engine.expressions import (
    MAX_DEPTH,
    MAX_SOURCE_LENGTH,
    Binary,
    Boolean,
    BoolOp,
    Call,
    Compare,
    Expression,
    ExpressionError,
    Name,
    Node,
    Not,
    Number,
    Unary,
    parse_expression,
)


def _render(node: Node) -> str:
    """The parsed tree written back fully parenthesised, to make precedence visible."""
    match node:
        case Number(value=value):
            return repr(value)
        case Boolean(value=value):
            return "true" if value else "false"
        case Name(name=name):
            return name
        case Unary(op=op, operand=operand):
            return f"({op}{_render(operand)})"
        case Binary(op=op, left=left, right=right) | Compare(op=op, left=left, right=right):
            return f"({_render(left)} {op} {_render(right)})"
        case BoolOp(op=op, operands=operands):
            return "(" + f" {op} ".join(_render(operand) for operand in operands) + ")"
        case Not(operand=operand):
            return f"(not {_render(operand)})"
        case Call(function=function, arguments=arguments):
            return f"{function}(" + ", ".join(_render(argument) for argument in arguments) + ")"
    raise AssertionError(node)


def _value(source: str, **env: Any) -> Any:
    return parse_expression(source).evaluate(env).item()


# --- precedence and literals ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # The expected values are the same text computed by Python itself.
        ("-2**2", -(2**2)),
        ("2**3**2", 2**3**2),
        ("2**-1", 2**-1),
        ("2 ** -1 ** 2", 2 ** -(1**2)),
        ("-2 ** -2", -(2**-2)),
        ("2 ** -1 * 3", 2**-1 * 3),
        ("1 + 2 * 3", 1 + 2 * 3),
        ("(1 + 2) * 3", (1 + 2) * 3),
        ("10 - 4 - 3", 10 - 4 - 3),
        ("8 / 4 / 2", 8 / 4 / 2),
        ("2 * 3 ** 2", 2 * 3**2),
        ("-3 * -2", -3 * -2),
        ("- -3", 3),
        ("+-+3", +(-(+3))),
        ("1 + 2 < 4", 1 + 2 < 4),
        ("(1 < 2) == true", (1 < 2) == 1),
        ("not 1 < 2 or 2 < 3", (not 1 < 2) or 2 < 3),
        ("not 1 > 2 and 3 > 4", (not 1 > 2) and 3 > 4),
        ("true or false and false", True),
        ("not not true", True),
        ("true + true", 2.0),
        ("1e-3 + .5 + 1. + 2E2", 1e-3 + 0.5 + 1.0 + 2e2),
        ("min(3, 1, 2) + max(3, 1, 2)", 4.0),
        ("abs(-2) + exp(0) + log(1)", 3.0),
        ("where(1 > 2, 10, 20)", 20.0),
    ],
)
def test_precedence_matches_python(source: str, expected: float | bool) -> None:
    assert _value(source) == expected


@pytest.mark.parametrize(
    ("source", "tree"),
    [
        ("a + b * c", "(a + (b * c))"),
        ("a * b + c", "((a * b) + c)"),
        ("a - b - c", "((a - b) - c)"),
        ("a ** b ** c", "(a ** (b ** c))"),
        ("-a ** b", "(-(a ** b))"),
        ("-a * b", "((-a) * b)"),
        ("a ** -b", "(a ** (-b))"),
        ("a + b < c * d", "((a + b) < (c * d))"),
        ("not a == b and c", "((not (a == b)) and c)"),
        ("a or b and c", "(a or (b and c))"),
        ("a and b and c or d", "((a and b and c) or d)"),
        ("(a < b) < c", "((a < b) < c)"),
        ("where(not a, -b, c ** 2)", "where((not a), (-b), (c ** 2.0))"),
    ],
)
def test_tree_shape_follows_precedence(source: str, tree: str) -> None:
    assert _render(parse_expression(source).root) == tree


def test_value_expression_from_the_design() -> None:
    expression = parse_expression("p_accept * (apr * limit * 0.6 - pd * lgd * limit) - cost")
    value = expression.evaluate(
        {
            "p_accept": np.array([0.5, 0.1]),
            "apr": 0.2,
            "limit": np.array([1000.0, 5000.0]),
            "pd": np.array([0.02, 0.1]),
            "lgd": 0.6,
            "cost": 3,
        }
    )
    expected = (
        np.array([0.5, 0.1])
        * (0.2 * np.array([1000.0, 5000.0]) * 0.6 - np.array([0.02, 0.1]) * 0.6 * [1000.0, 5000.0])
        - 3
    )
    np.testing.assert_allclose(value, expected)
    assert expression.names == {"p_accept", "apr", "limit", "pd", "lgd", "cost"}
    assert expression.functions == frozenset()
    assert not expression.is_boolean


def test_names_functions_and_is_boolean() -> None:
    rule = parse_expression("apr <= 0.36 and not (channel_sms and hour < 8)")
    assert rule.names == {"apr", "channel_sms", "hour"}
    assert rule.is_boolean
    ratio = parse_expression("where(income > 0, limit / income, 99) + max(a, min(b, c))")
    assert ratio.names == {"income", "limit", "a", "b", "c"}
    assert ratio.functions == {"where", "max", "min"}
    assert not ratio.is_boolean
    assert parse_expression("false").is_boolean
    assert parse_expression("(a != b)").is_boolean
    assert parse_expression("a + b") == parse_expression("a + b")


def test_eligibility_rule_on_arrays() -> None:
    rule = parse_expression("apr <= 0.36 and not (channel_sms and hour < 8)")
    result = rule.evaluate(
        {
            "apr": np.array([0.3, 0.4, 0.3, 0.3]),
            "channel_sms": np.array([True, False, True, False]),
            "hour": np.array([7, 7, 9, 7]),
        }
    )
    assert result.dtype == np.bool_
    np.testing.assert_array_equal(result, [False, False, True, True])


# --- evaluation semantics -------------------------------------------------------------------------


def test_scalars_broadcast_with_arrays() -> None:
    expression = parse_expression("a * b + c")
    result = expression.evaluate({"a": 2.0, "b": np.array([1.0, 2.0, 3.0]), "c": 1})
    np.testing.assert_array_equal(result, [3.0, 5.0, 7.0])
    grid = parse_expression("row + column").evaluate(
        {"row": np.array([[0.0], [10.0]]), "column": np.array([1.0, 2.0, 3.0])}
    )
    assert grid.shape == (2, 3)


def test_all_scalar_inputs_give_a_zero_dimensional_array() -> None:
    result = parse_expression("a + 1").evaluate({"a": 2})
    assert isinstance(result, np.ndarray)
    assert result.shape == ()
    assert result.dtype == np.float64
    assert result.item() == 3.0
    assert isinstance(parse_expression("1 < 2").evaluate({}), np.ndarray)


def test_booleans_count_as_zero_and_one_in_arithmetic() -> None:
    result = parse_expression("flag * 10 + -flag").evaluate({"flag": np.array([True, False])})
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, [9.0, 0.0])


def test_nonzero_numbers_are_true_in_logic() -> None:
    result = parse_expression("a and not b or c").evaluate(
        {"a": np.array([2.0, 0.0, np.nan]), "b": np.array([0.0, 0.0, 1.0]), "c": 0}
    )
    np.testing.assert_array_equal(result, [True, False, False])


def test_division_by_zero_and_log_of_negatives_give_inf_and_nan_without_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = parse_expression("1 / x + log(y) * 0 + exp(z)").evaluate(
            {"x": np.array([0.0, -0.0, 2.0]), "y": np.array([1.0, 1.0, -1.0]), "z": 0.0}
        )
        np.testing.assert_array_equal(result, [np.inf, -np.inf, np.nan])
        assert np.isnan(_value("0 / 0"))
        assert _value("exp(1000)") == np.inf
        assert _value("2 ** 1000 * 2 ** 1000") == np.inf


def test_where_keeps_boolean_branches_boolean() -> None:
    env = {"x": np.array([1.0, -1.0])}
    assert parse_expression("where(x > 0, x > 5, true)").evaluate(env).dtype == np.bool_
    assert parse_expression("where(x > 0, x, true)").evaluate(env).dtype == np.float64


def test_missing_name_at_evaluation_is_an_expression_error() -> None:
    expression = parse_expression("a + bb * 2")
    with pytest.raises(ExpressionError) as caught:
        expression.evaluate({"a": 1.0})
    assert caught.value.position == 4
    assert "bb" in str(caught.value)


def test_non_numeric_or_mismatched_inputs_are_expression_errors() -> None:
    with pytest.raises(ExpressionError, match="not numeric"):
        parse_expression("a + 1").evaluate({"a": np.array(["sms", "call"])})
    with pytest.raises(ExpressionError, match="cannot combine") as caught:
        parse_expression("a + b").evaluate({"a": np.ones(2), "b": np.ones(3)})
    assert caught.value.position == 2


def test_a_long_flat_sum_parses_and_evaluates_without_recursion() -> None:
    # Nesting is bounded, length is not: this is a ~2000-deep left-leaning tree.
    source = "+".join(["x"] * 2000)
    assert len(source) <= MAX_SOURCE_LENGTH
    expression = parse_expression(source)
    assert expression.evaluate({"x": np.array([1.0, 0.5])}).tolist() == [2000.0, 1000.0]
    assert "Binary" in repr(expression.root)
    assert parse_expression(" and ".join(["x"] * 600)).evaluate({"x": 1.0}).item() is True


# --- errors and their positions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "position", "fragment"),
    [
        ("", 0, "empty expression"),
        ("   ", 0, "empty expression"),
        ("a +", 3, "unexpected end of expression"),
        ("a + * b", 4, "unexpected '*'"),
        ("(a + b", 0, "unclosed '('"),
        ("min(a, (b + c)", 3, "unclosed '('"),
        ("(a + b c)", 7, "expected ')'"),
        ("a + b)", 5, "unmatched ')'"),
        ("a b", 2, "after a complete expression"),
        ("a + b 7", 6, "after a complete expression"),
        ("a, b", 1, "after a complete expression"),
        ("(a, b)", 2, "expected ')'"),
        ("a < b < c", 6, "cannot be chained"),
        ("a == b != c", 7, "cannot be chained"),
        ("a = 1", 2, "'='"),
        ("a % 2", 2, "'%'"),
        ("a // 2", 3, "unexpected '/'"),
        ("x.y", 1, "'.'"),
        ("2x", 0, "malformed number"),
        ("1.2.3", 0, "malformed number"),
        ("1e999", 0, "too large"),
        ("a + -not b", 5, "'not' cannot appear here"),
        ("a == not b", 5, "'not' cannot appear here"),
        ("min", 0, "is a function"),
        ("foo(1)", 0, "unknown function 'foo'"),
        ("min(a, b,)", 9, "unexpected ')'"),
        ("True", 0, "not part of the expression language"),
        ("x ** (500 + 501)", 2, "constant exponent 1001"),
        ("x ** -1001", 2, "constant exponent -1001"),
        ("a_b__c", 0, "'__'"),
        ("\u00e9t\u00e9", 0, "unexpected character"),
        ("\u0663", 0, "unexpected character"),
    ],
)
def test_syntax_errors_report_their_position(source: str, position: int, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(source)
    assert caught.value.position == position
    assert fragment in str(caught.value)
    assert str(caught.value).startswith(caught.value.message)


def test_unknown_name_is_the_first_from_the_left_with_a_suggestion() -> None:
    allowed = ["p_accept", "pd", "lgd", "limit", "apr"]
    with pytest.raises(ExpressionError) as caught:
        parse_expression("apr * limit - pdd * lgd - zzz", allowed_names=allowed)
    error = caught.value
    assert error.message == "unknown name 'pdd'"
    assert error.position == 14
    assert str(error) == "unknown name 'pdd' at position 14; did you mean 'pd'?"
    with pytest.raises(ExpressionError) as caught:
        parse_expression("apr * zzz", allowed_names=allowed)
    assert str(caught.value) == "unknown name 'zzz' at position 6"
    assert parse_expression("apr * pd", allowed_names=allowed).names == {"apr", "pd"}


def test_unknown_function_suggests_a_close_one() -> None:
    with pytest.raises(ExpressionError, match="did you mean 'max'"):
        parse_expression("mx(a, b)")


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("min(a)", "min() takes at least 2 arguments, got 1"),
        ("max()", "max() takes at least 2 arguments, got 0"),
        ("log(a, b)", "log() takes exactly 1 argument, got 2"),
        ("exp()", "exp() takes exactly 1 argument, got 0"),
        ("abs(a, b)", "abs() takes exactly 1 argument, got 2"),
        ("where(a, b)", "where() takes exactly 3 arguments, got 2"),
        ("where(a, b, c, d)", "where() takes exactly 3 arguments, got 4"),
    ],
)
def test_wrong_arity_names_the_function(source: str, fragment: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(f"1 + {source}")
    assert fragment in str(caught.value)
    assert caught.value.position == 4


def test_nesting_limit_applies_before_python_recursion_could() -> None:
    assert _value("(" * MAX_DEPTH + "1" + ")" * MAX_DEPTH) == 1.0
    assert _value("-" * MAX_DEPTH + "1") == 1.0
    for source in (
        "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1),
        "-" * (MAX_DEPTH + 1) + "1",
        "not " * (MAX_DEPTH + 1) + "x",
        "min(" * (MAX_DEPTH + 1) + "1" + ", 1)" * (MAX_DEPTH + 1),
        "x" + " ** x" * (MAX_DEPTH + 1),
    ):
        with pytest.raises(ExpressionError, match="nested too deeply"):
            parse_expression(source)


def test_expression_error_survives_pickling() -> None:
    error = ExpressionError("unknown name 'pdd'", 3, "did you mean 'pd'?")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
    assert (copy.message, copy.position, copy.hint) == (error.message, 3, error.hint)
    assert str(copy) == str(error)


def test_non_text_source_is_refused() -> None:
    with pytest.raises(ExpressionError, match="must be text"):
        parse_expression(0.5)  # type: ignore[arg-type]


# --- hostile input --------------------------------------------------------------------------------

HOSTILE = [
    "x.__class__",
    "().__class__.__bases__",
    "().__class__.__bases__[0].__subclasses__()",
    "lambda: 1",
    "[x for x in y]",
    "{}",
    '"abc"',
    "'abc'",
    "open('f')",
    "eval('1')",
    "exec",
    "exec(1)",
    "getattr(x, 1)",
    "a; b",
    "a := 1",
    "(a := 1)",
    "x if y else z",
    "import os",
    "9**9**9**9",
    "9**9**9",
    "2**100000",
    "2.0 ** 10000",
    "x ** (10 ** 4)",
    "(" * 10_000 + "1" + ")" * 10_000,
    "(" * 10_000,
    "-" * 100_000 + "1",
    "not " * 10_000 + "x",
    "1+" * 500_000 + "1",
    "x" * 1_000_000,
    "f(" * 1000,
    "\x00",
    "a\\\nb",
    "`a`",
    "a[0]",
    "a @ b",
    "a >> b",
    "a if b",
    "*a",
    "**a",
    "a, b",
    "min(*a)",
    "min(a=1, b=2)",
]


@pytest.mark.parametrize("source", HOSTILE, ids=lambda source: repr(source[:30]))
def test_hostile_input_is_refused_quickly(source: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ExpressionError):
        parse_expression(source, allowed_names={"a", "b", "x", "y", "z"})
    assert time.perf_counter() - started < 1.0


def test_hostile_call_is_refused_without_running_anything(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    for source in (
        f"__import__('os').system('touch {target}')",
        f"os.system('touch {target}')",
        f"system(touch {target})",
    ):
        with pytest.raises(ExpressionError):
            parse_expression(source).evaluate({})
    assert not target.exists()


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_parses_or_is_an_expression_error(source: str) -> None:
    try:
        parse_expression(source)
    except ExpressionError as error:
        assert error.position is None or 0 <= error.position <= len(source)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=list("xy019.e()+-*/<>=!, \tandortfuemiwhlgpbs"), max_size=40))
def test_text_near_the_language_parses_and_evaluates_or_is_an_expression_error(
    source: str,
) -> None:
    try:
        expression = parse_expression(source)
    except ExpressionError as error:
        assert error.position is None or 0 <= error.position <= len(source)
        return
    env = {name: np.array([0.0, 1.5, -2.0]) for name in expression.names}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = expression.evaluate(env)
    assert result.dtype in (np.float64, np.bool_)


# --- property tests: generated trees against numpy ------------------------------------------------

# A generated tree is (kind, payload, children); the reference evaluator below works on these
# tuples, independently of the parser's node classes.
Tree = tuple[str, Any, tuple["Tree", ...]]

VARIABLES = ("x", "y", "s", "flag", "ok")
ARITHMETIC = ("+", "-", "*", "/", "**")
COMPARISONS = ("<", "<=", ">", ">=", "==", "!=")

_LEAVES: Mapping[str, st.SearchStrategy[Tree]] = {
    "var": st.sampled_from(VARIABLES).map(lambda name: ("var", name, ())),
    "num": st.one_of(
        st.integers(min_value=0, max_value=5).map(float),
        st.floats(min_value=0.0, max_value=10.0, allow_nan=False, allow_infinity=False),
        st.floats(min_value=1e-6, max_value=1e-3),
    ).map(lambda value: ("num", value, ())),
    "bool": st.booleans().map(lambda value: ("bool", value, ())),
}
# Mostly variables, so that results depend on the data rather than on folded constants.
_leaves = st.sampled_from(("var", "var", "var", "num", "num", "bool")).flatmap(_LEAVES.__getitem__)


def _branch(children: st.SearchStrategy[Tree], kind: str) -> st.SearchStrategy[Tree]:
    pair = st.tuples(children, children)
    if kind == "bin":
        return st.tuples(st.just(kind), st.sampled_from(ARITHMETIC), pair)
    if kind == "unary":
        return st.tuples(st.just(kind), st.sampled_from("-+"), st.tuples(children))
    if kind == "cmp":
        return st.tuples(st.just(kind), st.sampled_from(COMPARISONS), pair)
    if kind == "logic":
        return st.tuples(st.just(kind), st.sampled_from(["and", "or"]), pair)
    if kind == "not":
        return st.tuples(st.just(kind), st.just("not"), st.tuples(children))
    if kind == "where":
        return st.tuples(
            st.just("call"),
            st.just("where"),
            st.tuples(children, pair).map(lambda arguments: (arguments[0], *arguments[1])),
        )
    return st.one_of(
        st.tuples(
            st.just("call"),
            st.sampled_from(["min", "max"]),
            st.lists(children, min_size=2, max_size=3).map(tuple),
        ),
        st.tuples(st.just("call"), st.sampled_from(["log", "exp", "abs"]), st.tuples(children)),
    )


def _trees(kinds: tuple[str, ...]) -> st.SearchStrategy[Tree]:
    """Random trees whose inner nodes are drawn from ``kinds`` (repeat a kind to weight it)."""

    def branches(children: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
        return st.sampled_from(kinds).flatmap(lambda kind: _branch(children, kind))

    return st.recursive(_leaves, branches, max_leaves=16).filter(lambda tree: _depth(tree) <= 12)


def _depth(tree: Tree) -> int:
    return 1 + max((_depth(child) for child in tree[2]), default=0)


# Every construct of the language, weighted towards arithmetic.
trees = _trees(("bin", "bin", "bin", "unary", "cmp", "logic", "not", "call", "where"))
# Operators only: the shapes (a - b - c, -a ** b, a or b and c, not a < b) where precedence and
# associativity alone decide the meaning, drawn often enough to catch a wrong binding power.
operator_trees = _trees(("bin", "bin", "unary", "unary", "cmp", "logic", "logic", "not"))


@st.composite
def environments(draw: st.DrawFn) -> dict[str, Any]:
    size = draw(st.integers(min_value=1, max_value=6))
    elements = st.one_of(
        st.floats(min_value=-10, max_value=10),
        # Zeros and small integers often, so that logic on numbers sees both truth values.
        st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, np.inf, -np.inf, np.nan]),
    )
    return {
        "x": draw(hnp.arrays(np.float64, size, elements=elements)),
        "y": draw(hnp.arrays(np.float64, size, elements=elements)),
        # A plain Python scalar, to check broadcasting against the arrays.
        "s": draw(st.floats(min_value=-5, max_value=5)),
        "flag": draw(hnp.arrays(np.bool_, size)),
        "ok": draw(hnp.arrays(np.bool_, size)),
    }


def _floats(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _truth(value: Any) -> np.ndarray:
    value = np.asarray(value)
    return value if value.dtype == np.bool_ else value != 0


_REFERENCE_ARITHMETIC: Mapping[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
}
_REFERENCE_COMPARISONS: Mapping[str, Callable[[Any, Any], Any]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _reference(tree: Tree, env: Mapping[str, Any]) -> np.ndarray:
    """The tree computed directly with numpy operators, following the documented semantics."""
    kind, payload, children = tree
    values = [_reference(child, env) for child in children]
    if kind == "num":
        return np.asarray(payload, dtype=np.float64)
    if kind == "bool":
        return np.asarray(payload)
    if kind == "var":
        value = np.asarray(env[payload])
        return value if value.dtype == np.bool_ else value.astype(np.float64)
    if kind == "unary":
        return -_floats(values[0]) if payload == "-" else _floats(values[0])
    if kind == "bin":
        return np.asarray(_REFERENCE_ARITHMETIC[payload](_floats(values[0]), _floats(values[1])))
    if kind == "cmp":
        return np.asarray(_REFERENCE_COMPARISONS[payload](_floats(values[0]), _floats(values[1])))
    if kind == "logic":
        left, right = _truth(values[0]), _truth(values[1])
        return (left & right) if payload == "and" else (left | right)
    if kind == "not":
        return ~_truth(values[0])
    if payload == "min":
        result = _floats(values[0])
        for value in values[1:]:
            result = np.minimum(result, _floats(value))
        return result
    if payload == "max":
        result = _floats(values[0])
        for value in values[1:]:
            result = np.maximum(result, _floats(value))
        return result
    if payload in ("log", "exp", "abs"):
        return {"log": np.log, "exp": np.exp, "abs": np.abs}[payload](_floats(values[0]))
    condition, if_true, if_false = values
    if if_true.dtype == np.bool_ and if_false.dtype == np.bool_:
        return np.where(_truth(condition), if_true, if_false)
    return np.where(_truth(condition), _floats(if_true), _floats(if_false))


def _has_huge_constant_exponent(tree: Tree) -> bool:
    """Whether the parser must refuse the tree: some '**' has a constant exponent over 1000."""
    kind, payload, children = tree
    if kind == "bin" and payload == "**" and not _mentions_variables(children[1]):
        with np.errstate(all="ignore"):
            if abs(float(_reference(children[1], {}))) > 1000:
                return True
    return any(_has_huge_constant_exponent(child) for child in children)


def _variables(tree: Tree) -> set[str]:
    kind, payload, children = tree
    names = {payload} if kind == "var" else set()
    return names.union(*(_variables(child) for child in children))


def _mentions_variables(tree: Tree) -> bool:
    return bool(_variables(tree))


def _number(value: float) -> str:
    return repr(float(value))


def _full(tree: Tree) -> str:
    """Every operation in its own parentheses: tests the parser's grammar, not its precedence."""
    kind, payload, children = tree
    if kind == "num":
        return _number(payload)
    if kind == "bool":
        return "true" if payload else "false"
    if kind == "var":
        return payload
    if kind == "unary":
        return f"({payload}{_full(children[0])})"
    if kind == "not":
        return f"(not {_full(children[0])})"
    if kind in ("bin", "cmp", "logic"):
        return f"({_full(children[0])} {payload} {_full(children[1])})"
    return f"{payload}(" + ", ".join(_full(child) for child in children) + ")"


# Precedence levels of the language (higher binds tighter), mirrored from the documentation.
_LEVEL = {"or": 1, "and": 2, "not": 3, "cmp": 4, "+": 5, "-": 5, "*": 6, "/": 6}
_UNARY, _POWER, _ATOM = 7, 8, 9


def _level(tree: Tree) -> int:
    kind, payload, _ = tree
    if kind in ("num", "bool", "var", "call"):
        return _ATOM
    if kind == "unary":
        return _UNARY
    if kind == "not":
        return _LEVEL["not"]
    if kind == "cmp":
        return _LEVEL["cmp"]
    if kind == "logic":
        return _LEVEL[payload]
    return _POWER if payload == "**" else _LEVEL[payload]


def _minimal(tree: Tree) -> str:
    """Only the parentheses the precedence rules require, so the parser's precedence decides."""
    kind, payload, children = tree

    def wrap(child: Tree, needs_parentheses: bool) -> str:
        text = _minimal(child)
        return f"({text})" if needs_parentheses else text

    if kind == "num":
        return _number(payload)
    if kind == "bool":
        return "true" if payload else "false"
    if kind == "var":
        return payload
    if kind == "call":
        return f"{payload}(" + ", ".join(_minimal(child) for child in children) + ")"
    if kind == "unary":
        # A space keeps "- -x" readable; the operand of a prefix minus is a unary or a power.
        return f"{payload} {wrap(children[0], _level(children[0]) < _UNARY)}"
    if kind == "not":
        return f"not {wrap(children[0], _level(children[0]) < _LEVEL['not'])}"
    left, right = children
    level = _level(tree)
    if kind == "bin" and payload == "**":
        # Right-associative; the right operand may be a bare unary (2 ** -1), the left may not.
        left_text = wrap(left, _level(left) <= _POWER)
        right_text = wrap(right, _level(right) < _UNARY)
    elif kind == "cmp":
        # Not chainable: a comparison inside a comparison always keeps its parentheses.
        left_text = wrap(left, _level(left) <= level)
        right_text = wrap(right, _level(right) <= level)
    else:
        # Left-associative: a same-level right operand keeps its parentheses, because
        # a - (b - c) differs and float addition is not associative either.
        left_text = wrap(left, _level(left) < level)
        right_text = wrap(right, _level(right) <= level)
    return f"{left_text} {payload} {right_text}"


def _check_against_reference(source: str, tree: Tree, env: dict[str, Any]) -> None:
    if _has_huge_constant_exponent(tree):
        with pytest.raises(ExpressionError, match="constant exponent"):
            parse_expression(source)
        return
    expression = parse_expression(source, allowed_names=VARIABLES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        actual = expression.evaluate(env)
    with np.errstate(all="ignore"):
        expected = np.asarray(_reference(tree, env))
    assert actual.dtype == expected.dtype, source
    assert actual.shape == expected.shape, source
    np.testing.assert_array_equal(actual, expected, err_msg=source)


@settings(max_examples=250, deadline=None)
@given(trees, environments())
def test_fully_parenthesised_trees_evaluate_like_numpy(tree: Tree, env: dict[str, Any]) -> None:
    _check_against_reference(_full(tree), tree, env)


@settings(max_examples=400, deadline=None)
@given(st.one_of(trees, operator_trees), environments())
def test_minimally_parenthesised_trees_evaluate_like_numpy(tree: Tree, env: dict[str, Any]) -> None:
    source = _minimal(tree)
    assume(len(source) <= MAX_SOURCE_LENGTH)
    _check_against_reference(source, tree, env)


@settings(max_examples=1000, deadline=None)
@given(st.one_of(trees, operator_trees))
def test_minimal_and_full_renderings_parse_to_the_same_tree(tree: Tree) -> None:
    assume(not _has_huge_constant_exponent(tree))
    minimal = parse_expression(_minimal(tree))
    full = parse_expression(_full(tree))
    assert _render(minimal.root) == _render(full.root)
    assert minimal.names == full.names == _variables(tree)
    assert minimal.is_boolean == (tree[0] in ("cmp", "logic", "not", "bool"))


def test_python_agrees_on_scalar_precedence_examples() -> None:
    # A few scalar identities where Python's own float arithmetic is the oracle.
    for source, expected in [
        ("3 - 2 ** 2 * 2 / 4 + 1", 3 - 2**2 * 2 / 4 + 1),
        ("-(3 - 1) ** 2", -((3 - 1) ** 2)),
        ("exp(log(5)) - 5", math.exp(math.log(5)) - 5),
    ]:
        assert _value(source) == pytest.approx(expected)


def test_expression_is_a_frozen_value() -> None:
    expression = parse_expression("a + 1")
    assert isinstance(expression, Expression)
    with pytest.raises(AttributeError):
        expression.source = "b"  # type: ignore[misc]
