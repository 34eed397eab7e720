"""The expression language of strategies and constraint sets, parsed by hand and run on numpy.

Value, resource-use and eligibility expressions are written by analysts, approved by reviewers and
then run on every decision. Python's ``eval``/``compile``/``ast`` would accept far more than the
language (attribute access, imports, calls, unbounded work such as ``9**9**9``), so this module
has its own tokenizer and precedence-climbing (Pratt) parser that accept only the language below
and bound the work done while parsing, and it reports errors with the character position the
editor can point at.

Precedence, loosest first (as in Python)::

    or
    and
    not x
    <  <=  >  >=  ==  !=      not chainable: write ``a < b and b < c``
    +  -
    *  /
    -x  +x
    **                        right-associative; ``-2**2 == -4`` and ``2**-1 == 0.5``
    number, name, true, false, (expression), min(...), max(...), log(x), exp(x), abs(x),
    where(condition, if_true, if_false)

Evaluation is elementwise on float64 arrays (booleans count as 0/1 in arithmetic, non-zero counts
as true in logic), with numpy's inf/nan results instead of errors: a decision engine scoring a
million rows must not stop on one customer with zero income.

This module imports no Django: the web request, the Celery job and the benchmarks run the same code.
"""

from __future__ import annotations

import difflib
import functools
import keyword
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "MAX_CONSTANT_EXPONENT",
    "MAX_DEPTH",
    "MAX_SOURCE_LENGTH",
    "Binary",
    "BoolOp",
    "Boolean",
    "Call",
    "Compare",
    "Expression",
    "ExpressionError",
    "Name",
    "Node",
    "Not",
    "Number",
    "Unary",
    "parse_expression",
]

#: Longer sources are refused before tokenizing, so hostile input costs nothing to reject.
MAX_SOURCE_LENGTH: Final = 4000
#: Nesting (parentheses, call arguments, operands of prefix and right-hand operators) allowed;
#: the parser uses two or three stack frames per level, far below Python's recursion limit.
MAX_DEPTH: Final = 64
#: A constant exponent beyond this is refused: no lending quantity needs it, and it is how
#: ``9**9**9`` style input would ask for absurd amounts of work in a less careful evaluator.
MAX_CONSTANT_EXPONENT: Final = 1000.0


class ExpressionError(ValueError):
    """An expression that cannot be parsed or evaluated.

    ``position`` is the 0-based character offset into the source when the problem has a place
    (the editor underlines it); ``hint`` is an optional suggestion such as "did you mean 'pd'?".
    It subclasses ``ValueError`` because it is bad input, never a bug in the engine.
    """

    message: str
    position: int | None
    hint: str | None

    def __init__(self, message: str, position: int | None = None, hint: str | None = None) -> None:
        # All three go to args so that the error survives pickling (Celery results).
        super().__init__(message, position, hint)
        self.message = message
        self.position = position
        self.hint = hint

    def __str__(self) -> str:
        text = self.message
        if self.position is not None:
            text = f"{text} at position {self.position}"
        if self.hint:
            text = f"{text}; {self.hint}"
        return text


# --- the tree -------------------------------------------------------------------------------------

_Value: TypeAlias = np.ndarray | np.generic


class Node:
    """Base of the expression tree nodes.

    Nodes compare by identity and have a one-line ``repr``: a flat sum of 2000 terms is a
    2000-deep tree, and the generated recursive ``__eq__``/``__repr__`` of dataclasses would hit
    Python's recursion limit on it. Everything in this module walks trees without recursion.
    """

    __slots__ = ()
    position: int

    def children(self) -> tuple[Node, ...]:
        """The operand nodes, in source order (evaluated before this node)."""
        return ()

    def _label(self) -> object:
        """What ``repr`` shows besides the position; every node class says its own."""
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._label()!r}, position={self.position})"


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Number(Node):
    """A numeric literal, already converted to a finite float."""

    value: float
    position: int

    def _label(self) -> object:
        return self.value


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Boolean(Node):
    """``true`` or ``false``."""

    value: bool
    position: int

    def _label(self) -> object:
        return self.value


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Name(Node):
    """A variable: a feature, a predicted quantity or an action attribute, bound at evaluation."""

    name: str
    position: int

    def _label(self) -> object:
        return self.name


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Unary(Node):
    """Prefix ``-`` or ``+``."""

    op: str
    operand: Node
    position: int

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)

    def _label(self) -> object:
        return self.op


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Binary(Node):
    """Arithmetic ``+ - * / **``; ``position`` is the operator's."""

    op: str
    left: Node
    right: Node
    position: int

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)

    def _label(self) -> object:
        return self.op


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Compare(Node):
    """One comparison ``< <= > >= == !=``; ``position`` is the operator's."""

    op: str
    left: Node
    right: Node
    position: int

    def children(self) -> tuple[Node, ...]:
        return (self.left, self.right)

    def _label(self) -> object:
        return self.op


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class BoolOp(Node):
    """``and`` / ``or`` over two or more operands (a chain of the same operator is kept flat)."""

    op: str
    operands: tuple[Node, ...]
    position: int

    def children(self) -> tuple[Node, ...]:
        return self.operands

    def _label(self) -> object:
        return self.op


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Not(Node):
    """Logical ``not``."""

    operand: Node
    position: int

    def children(self) -> tuple[Node, ...]:
        return (self.operand,)

    def _label(self) -> object:
        return "not"


@dataclass(frozen=True, eq=False, repr=False, slots=True)
class Call(Node):
    """A call to one of the built-in functions; ``position`` is the function name's."""

    function: str
    arguments: tuple[Node, ...]
    position: int

    def children(self) -> tuple[Node, ...]:
        return self.arguments

    def _label(self) -> object:
        return self.function


# --- evaluation -----------------------------------------------------------------------------------


def _as_float(value: _Value) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _truth(value: _Value) -> _Value:
    # Non-zero is true, as in Python; NaN is non-zero and therefore true, as bool(nan) is.
    if value.dtype == np.bool_:
        return value
    return np.not_equal(value, 0.0)


def _where(arguments: Sequence[_Value]) -> _Value:
    condition, if_true, if_false = arguments
    # Two boolean branches stay boolean so that where() can build eligibility rules.
    if if_true.dtype == np.bool_ and if_false.dtype == np.bool_:
        return np.where(_truth(condition), if_true, if_false)
    return np.where(_truth(condition), _as_float(if_true), _as_float(if_false))


@dataclass(frozen=True, slots=True)
class _Function:
    min_arguments: int
    max_arguments: int | None
    apply: Callable[[Sequence[_Value]], _Value]

    def arity(self) -> str:
        if self.max_arguments is None:
            return f"at least {self.min_arguments} arguments"
        if self.min_arguments == 1:
            return "exactly 1 argument"
        return f"exactly {self.min_arguments} arguments"


_FUNCTIONS: Final[Mapping[str, _Function]] = {
    "min": _Function(2, None, lambda args: functools.reduce(np.minimum, map(_as_float, args))),
    "max": _Function(2, None, lambda args: functools.reduce(np.maximum, map(_as_float, args))),
    "log": _Function(1, 1, lambda args: np.log(_as_float(args[0]))),
    "exp": _Function(1, 1, lambda args: np.exp(_as_float(args[0]))),
    "abs": _Function(1, 1, lambda args: np.abs(_as_float(args[0]))),
    "where": _Function(3, 3, _where),
}

# Typed as plain callables: numpy types a ufunc's result as Any.
_Operator: TypeAlias = Callable[[np.ndarray, np.ndarray], _Value]

_ARITHMETIC: Final[Mapping[str, _Operator]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "**": np.power,
}

_COMPARISONS: Final[Mapping[str, _Operator]] = {
    "<": np.less,
    "<=": np.less_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "==": np.equal,
    "!=": np.not_equal,
}


def _lookup(node: Name, env: Mapping[str, ArrayLike | float | bool]) -> _Value:
    if node.name not in env:
        raise ExpressionError(f"no value given for name '{node.name}'", node.position)
    try:
        value = np.asarray(env[node.name])
    except (TypeError, ValueError, OverflowError) as exc:
        raise ExpressionError(
            f"the value of '{node.name}' is not an array ({exc})", node.position
        ) from exc
    if value.dtype == np.bool_:
        return value
    if value.dtype.kind in "iuf":
        return value.astype(np.float64, copy=False)
    raise ExpressionError(
        f"the value of '{node.name}' is not numeric (dtype {value.dtype})", node.position
    )


_Step: TypeAlias = Callable[[Sequence[_Value], Mapping[str, Any]], _Value]


def _step(node: Node) -> _Step:
    """What computing ``node`` from its already computed operands does, decided once."""
    match node:
        case Number(value=value):
            constant = np.float64(value)
            return lambda operands, env: constant
        case Boolean(value=value):
            flag = np.bool_(value)
            return lambda operands, env: flag
        case Name():
            return lambda operands, env: _lookup(node, env)
        case Unary(op="-"):
            return lambda operands, env: np.negative(_as_float(operands[0]))
        case Unary():
            return lambda operands, env: _as_float(operands[0])
        case Binary(op=op) | Compare(op=op):
            ufunc = (_ARITHMETIC if isinstance(node, Binary) else _COMPARISONS)[op]
            return lambda operands, env: ufunc(_as_float(operands[0]), _as_float(operands[1]))
        case BoolOp(op=op):
            combine = np.logical_and if op == "and" else np.logical_or
            return lambda operands, env: functools.reduce(combine, map(_truth, operands))
        case Not():
            return lambda operands, env: np.logical_not(_truth(operands[0]))
        case Call(function=function):
            apply = _FUNCTIONS[function].apply
            return lambda operands, env: apply(operands)
    raise TypeError(f"not an expression node: {node!r}")  # pragma: no cover - closed hierarchy


_Program: TypeAlias = tuple[tuple[_Step, int, Node], ...]


def _compile(root: Node) -> _Program:
    """The tree in post-order, each node with its step and its number of operands.

    Walked with an explicit stack: the parser bounds nesting, not length, and
    ``1+1+...+1`` within the source limit is a 2000-deep left-leaning tree, which a
    recursive walk could not follow under Python's recursion limit. Evaluating the flat
    program then needs neither the walk nor a dispatch on the node's type per call.
    """
    order: list[tuple[_Step, int, Node]] = []
    pending: list[tuple[Node, bool]] = [(root, False)]
    while pending:
        node, operands_ready = pending.pop()
        children = node.children()
        if children and not operands_ready:
            pending.append((node, True))
            pending.extend((child, False) for child in reversed(children))
            continue
        order.append((_step(node), len(children), node))
    return tuple(order)


def _run(program: _Program, env: Mapping[str, ArrayLike | float | bool]) -> _Value:
    results: list[_Value] = []
    for step, arity, node in program:
        if arity:
            operands = results[-arity:]
            del results[-arity:]
        else:
            operands = results[:0]
        try:
            results.append(step(operands, env))
        except ExpressionError:
            raise
        except ValueError as exc:
            # Arrays of incompatible shapes in the environment: say where they met.
            raise ExpressionError(f"cannot combine the operands ({exc})", node.position) from exc
    return results[0]


@dataclass(frozen=True)
class Expression:
    """A parsed, validated expression, ready to evaluate on arrays.

    Build it with :func:`parse_expression`. Two expressions are equal when their sources are;
    the tree (``root``) is left out of equality and ``repr`` (see :class:`Node`).
    """

    source: str
    names: frozenset[str]
    functions: frozenset[str]
    #: The top-level node is a comparison, and/or/not or a boolean literal, as eligibility rules
    #: and per-decision rules must be. (``where(c, a < b, d)`` is boolean at run time but not here.)
    is_boolean: bool
    root: Node = field(repr=False, compare=False)

    def evaluate(self, env: Mapping[str, ArrayLike | float | bool]) -> np.ndarray:
        """Evaluate elementwise, broadcasting scalars against arrays.

        ``env`` maps every name in :attr:`names` to a numpy array or a Python scalar. The result
        is a float64 array, or a bool array for logical expressions; it is 0-d when every input
        is a scalar (numpy broadcasts it wherever it is used). Division by zero and logs of
        negatives give inf/nan silently, as numpy defines them. Raises :class:`ExpressionError`
        for a missing or non-numeric name, or arrays whose shapes do not broadcast.
        """
        with np.errstate(all="ignore"):
            return np.asarray(_run(self._program, env))

    @functools.cached_property
    def _program(self) -> _Program:
        return _compile(self.root)


# --- tokens ---------------------------------------------------------------------------------------

_NUMBER: Final = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_OPERATOR: Final = re.compile(r"\*\*|<=|>=|==|!=|[-+*/<>(),]", re.ASCII)
_WHITESPACE: Final = frozenset(" \t\r\n")
_KEYWORDS: Final = frozenset({"and", "or", "not", "true", "false"})
# Python's own keywords are not names here, so `x if y else z` or `lambda: 1` get a clear refusal
# rather than a puzzling "unexpected name" and nobody can mistake the language for Python.
_RESERVED: Final = frozenset(keyword.kwlist) - _KEYWORDS
_RESERVED_HINTS: Final[Mapping[str, str]] = {
    "True": "write 'true'",
    "False": "write 'false'",
    "if": "use where(condition, if_true, if_false)",
}
_CHARACTER_HINTS: Final[Mapping[str, str]] = {
    "'": "strings are not part of the expression language",
    '"': "strings are not part of the expression language",
    ".": "attribute access is not allowed",
    "[": "subscripts and lists are not allowed",
    "]": "subscripts and lists are not allowed",
    "{": "sets and dictionaries are not allowed",
    "}": "sets and dictionaries are not allowed",
    ":": "slices, lambdas and ':=' are not allowed",
    ";": "write a single expression",
    "=": "compare with '=='",
    "!": "negate with 'not'",
    "&": "use 'and'",
    "|": "use 'or'",
    "~": "use 'not'",
}

_END: Final = "end"
_NUMBER_KIND: Final = "number"
_NAME_KIND: Final = "name"
_KEYWORD_KIND: Final = "keyword"
_OPERATOR_KIND: Final = "operator"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    position: int
    value: float = 0.0

    def is_symbol(self, text: str) -> bool:
        """An operator, parenthesis, comma or keyword spelled ``text``."""
        return self.kind in (_OPERATOR_KIND, _KEYWORD_KIND) and self.text == text

    def describe(self) -> str:
        return "end of expression" if self.kind == _END else f"'{self.text}'"


class _Tokens:
    """Tokens produced on demand, so the first problem from the left is the one reported."""

    def __init__(self, source: str) -> None:
        self._source = source
        self._offset = 0
        self._next: _Token | None = None

    def peek(self) -> _Token:
        if self._next is None:
            self._next = self._scan()
        return self._next

    def advance(self) -> _Token:
        token = self.peek()
        self._next = None
        return token

    def _scan(self) -> _Token:
        source, offset = self._source, self._offset
        while offset < len(source) and source[offset] in _WHITESPACE:
            offset += 1
        if offset == len(source):
            self._offset = offset
            return _Token(_END, "", offset)
        char = source[offset]
        following = source[offset + 1 : offset + 2]
        if "0" <= char <= "9" or (char == "." and "0" <= following <= "9"):
            token = self._number(offset)
        elif (match := _NAME.match(source, offset)) is not None:
            token = self._word(match.group(), offset)
        elif (match := _OPERATOR.match(source, offset)) is not None:
            token = _Token(_OPERATOR_KIND, match.group(), offset)
        else:
            raise ExpressionError(
                f"unexpected character {char!r}", offset, _CHARACTER_HINTS.get(char)
            )
        self._offset = offset + len(token.text)
        return token

    def _number(self, offset: int) -> _Token:
        match = _NUMBER.match(self._source, offset)
        assert match is not None  # the caller saw a digit, or a '.' before a digit
        text = match.group()
        end = match.end()
        if end < len(self._source) and (
            self._source[end] == "."
            or _NAME.match(self._source, end)
            or self._source[end].isdigit()
        ):
            raise ExpressionError(f"malformed number {self._source[offset : end + 1]!r}", offset)
        value = float(text)
        if not np.isfinite(value):
            raise ExpressionError(f"number {text} is too large", offset)
        return _Token(_NUMBER_KIND, text, offset, value)

    @staticmethod
    def _word(word: str, offset: int) -> _Token:
        if word in _KEYWORDS:
            return _Token(_KEYWORD_KIND, word, offset)
        if word in _RESERVED:
            raise ExpressionError(
                f"'{word}' is not part of the expression language",
                offset,
                _RESERVED_HINTS.get(word),
            )
        if "__" in word:
            # Every route from a Python expression to the interpreter's internals is spelled
            # with a double underscore; refusing the spelling outright is cheap insurance.
            raise ExpressionError(f"names containing '__' are not allowed: '{word}'", offset)
        return _Token(_NAME_KIND, word, offset)


# --- parser ---------------------------------------------------------------------------------------

# Binding powers (left, right) of the infix operators. Left-associative operators bind their right
# operand one notch tighter; '**' binds its right operand looser than itself (right-associative)
# but tighter than prefix minus, which is what makes 2**-1 legal and -2**2 == -(2**2).
_INFIX: Final[Mapping[str, tuple[int, int]]] = {
    "or": (1, 2),
    "and": (3, 4),
    "<": (7, 8),
    "<=": (7, 8),
    ">": (7, 8),
    ">=": (7, 8),
    "==": (7, 8),
    "!=": (7, 8),
    "+": (9, 10),
    "-": (9, 10),
    "*": (11, 12),
    "/": (11, 12),
    "**": (15, 14),
}
# 'not' takes comparisons but stops at 'and'; it may only start an operand whose context is at
# most this loose (Python refuses `a == not b` and `-not a` too).
_NOT_OPERAND: Final = 5
_UNARY_OPERAND: Final = 13


class _Parser:
    def __init__(self, source: str, allowed_names: frozenset[str] | None) -> None:
        self._tokens = _Tokens(source)
        self._allowed_names = allowed_names
        self._depth = -1
        self.names: set[str] = set()
        self.functions: set[str] = set()
        # Values of the constant sub-expressions, keyed by node identity (every node stays alive
        # in the tree while parsing), so a constant exponent can be checked before it is used.
        self._constants: dict[int, _Value] = {}

    def parse(self) -> Node:
        if self._tokens.peek().kind == _END:
            raise ExpressionError("empty expression", 0)
        root = self._expression(0)
        token = self._tokens.peek()
        if token.kind != _END:
            if token.is_symbol(")"):
                raise ExpressionError("unmatched ')'", token.position)
            raise ExpressionError(
                f"unexpected {token.describe()} after a complete expression", token.position
            )
        return root

    def _expression(self, min_power: int) -> Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ExpressionError(
                    f"expression is nested too deeply (more than {MAX_DEPTH} levels)",
                    self._tokens.peek().position,
                )
            left = self._prefix(min_power)
            after_comparison = False
            while True:
                token = self._tokens.peek()
                powers = (
                    _INFIX.get(token.text)
                    if token.kind in (_OPERATOR_KIND, _KEYWORD_KIND)
                    else None
                )
                if powers is None or powers[0] < min_power:
                    return left
                is_comparison = token.text in _COMPARISONS
                if is_comparison and after_comparison:
                    raise ExpressionError(
                        "comparisons cannot be chained",
                        token.position,
                        "combine them with 'and', e.g. 'a < b and b < c'",
                    )
                after_comparison = is_comparison
                self._tokens.advance()
                right = self._expression(powers[1])
                left = self._infix(token, left, right)
        finally:
            self._depth -= 1

    def _prefix(self, min_power: int) -> Node:
        token = self._tokens.advance()
        if token.kind == _NUMBER_KIND:
            return self._fold(Number(token.value, token.position))
        if token.kind == _NAME_KIND:
            if self._tokens.peek().is_symbol("("):
                return self._call(token)
            return self._name(token)
        if token.is_symbol("true") or token.is_symbol("false"):
            return self._fold(Boolean(token.text == "true", token.position))
        if token.is_symbol("("):
            inner = self._expression(0)
            self._expect_closing(token)
            return inner
        if token.is_symbol("-") or token.is_symbol("+"):
            operand = self._expression(_UNARY_OPERAND)
            return self._fold(Unary(token.text, operand, token.position))
        if token.is_symbol("not"):
            if min_power > _NOT_OPERAND:
                raise ExpressionError(
                    "'not' cannot appear here", token.position, "put the 'not ...' in parentheses"
                )
            operand = self._expression(_NOT_OPERAND)
            return self._fold(Not(operand, token.position))
        if token.kind == _END:
            raise ExpressionError("unexpected end of expression", token.position)
        raise ExpressionError(f"unexpected {token.describe()}", token.position)

    def _infix(self, token: _Token, left: Node, right: Node) -> Node:
        op = token.text
        if op in ("and", "or"):
            if isinstance(left, BoolOp) and left.op == op:
                return self._fold(BoolOp(op, (*left.operands, right), left.position))
            return self._fold(BoolOp(op, (left, right), token.position))
        if op in _COMPARISONS:
            return self._fold(Compare(op, left, right, token.position))
        if op == "**":
            # Constants were folded as float64, so even 9**9**9 costs nothing to check here;
            # a NaN exponent compares false and is left to give NaN like any other.
            exponent = self._constants.get(id(right))
            if exponent is not None and abs(float(exponent)) > MAX_CONSTANT_EXPONENT:
                raise ExpressionError(
                    f"constant exponent {float(exponent):g} is too large "
                    f"(the limit is {MAX_CONSTANT_EXPONENT:g})",
                    token.position,
                )
        return self._fold(Binary(op, left, right, token.position))

    def _name(self, token: _Token) -> Node:
        name = token.text
        if name in _FUNCTIONS:
            raise ExpressionError(
                f"'{name}' is a function", token.position, f"call it as {name}(...)"
            )
        if self._allowed_names is not None and name not in self._allowed_names:
            matches = difflib.get_close_matches(name, sorted(self._allowed_names), n=1)
            hint = f"did you mean '{matches[0]}'?" if matches else None
            raise ExpressionError(f"unknown name '{name}'", token.position, hint)
        self.names.add(name)
        return Name(name, token.position)

    def _call(self, name_token: _Token) -> Node:
        name = name_token.text
        function = _FUNCTIONS.get(name)
        if function is None:
            matches = difflib.get_close_matches(name, sorted(_FUNCTIONS), n=1)
            hint = (
                f"did you mean '{matches[0]}'?"
                if matches
                else f"the functions are {', '.join(sorted(_FUNCTIONS))}"
            )
            raise ExpressionError(f"unknown function '{name}'", name_token.position, hint)
        opening = self._tokens.advance()
        arguments: list[Node] = []
        if self._tokens.peek().is_symbol(")"):
            self._tokens.advance()
        else:
            while True:
                arguments.append(self._expression(0))
                if self._tokens.peek().is_symbol(","):
                    self._tokens.advance()
                    continue
                self._expect_closing(opening)
                break
        count = len(arguments)
        if count < function.min_arguments or (
            function.max_arguments is not None and count > function.max_arguments
        ):
            raise ExpressionError(
                f"{name}() takes {function.arity()}, got {count}", name_token.position
            )
        self.functions.add(name)
        return self._fold(Call(name, tuple(arguments), name_token.position))

    def _expect_closing(self, opening: _Token) -> None:
        token = self._tokens.advance()
        if token.is_symbol(")"):
            return
        if token.kind == _END:
            raise ExpressionError("unclosed '('", opening.position)
        raise ExpressionError(
            f"expected ')' to close the '(' at position {opening.position}, "
            f"found {token.describe()}",
            token.position,
        )

    def _fold(self, node: Node) -> Node:
        """Record the node's value when all its operands are constant, then return it."""
        operands = node.children()
        if all(id(operand) in self._constants for operand in operands):
            with np.errstate(all="ignore"):
                self._constants[id(node)] = _step(node)(
                    [self._constants[id(operand)] for operand in operands], {}
                )
        return node


def parse_expression(source: str, *, allowed_names: Collection[str] | None = None) -> Expression:
    """Parse ``source`` into an :class:`Expression`, or raise :class:`ExpressionError`.

    When ``allowed_names`` is given (the features, predicted quantities and action attributes a
    strategy actually has), the first name from the left outside it is refused with its position
    and, when one is close, a "did you mean" hint: a typo is caught when the strategy is saved,
    not when it first runs. Parsing is bounded: at most :data:`MAX_SOURCE_LENGTH` characters,
    :data:`MAX_DEPTH` levels of nesting and constant exponents up to :data:`MAX_CONSTANT_EXPONENT`.
    """
    if not isinstance(source, str):
        # Strategy documents arrive as JSON, where an expression may be a bare number by mistake.
        raise ExpressionError(f"an expression must be text, not {type(source).__name__}")
    if len(source) > MAX_SOURCE_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(source)} characters; the limit is {MAX_SOURCE_LENGTH})"
        )
    parser = _Parser(source, None if allowed_names is None else frozenset(allowed_names))
    root = parser.parse()
    return Expression(
        source=source,
        names=frozenset(parser.names),
        functions=frozenset(parser.functions),
        is_boolean=isinstance(root, Compare | BoolOp | Not | Boolean),
        root=root,
    )
