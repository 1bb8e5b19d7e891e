"""Small builders of sqlglot nodes for the SQLite side of the translation."""

from __future__ import annotations

from sqlglot import exp


def _compound(e: exp.Expression) -> bool:
    """Whether `e` is written with an operator, so needs parentheses as an operand."""
    return isinstance(e, (exp.Binary, exp.Unary, exp.Between, exp.In, exp.Like, exp.Escape,
                          exp.Not, exp.Neg))


def _p(e: exp.Expression) -> exp.Expression:
    """Parenthesise a compound operand: sqlglot prints trees as built, without adding
    parentheses for precedence."""
    return exp.Paren(this=e) if _compound(e) else e


# SQLite's binary operators group from the left: `a OR b OR c` is `(a OR b) OR c`.
_LEFT_CHAINS = (exp.And, exp.Or, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod)


def _left(cls: type, a: exp.Expression) -> exp.Expression:
    """The left operand of `cls`: without parentheses when it is the same operator, so a
    chain of 200 ORs is written as one (SQLite's parser takes fewer than 100 levels of
    parentheses, and its expressions may be 1,000 deep)."""
    return a if cls in _LEFT_CHAINS and type(a) is cls else _p(a)


def _op(cls: type, a: exp.Expression, b: exp.Expression) -> exp.Expression:
    if cls is exp.Div:  # typed: SQLite's own `/` (sqlglot would otherwise add a CAST)
        return exp.Div(this=_left(cls, a), expression=_p(b), typed=True)
    return cls(this=_left(cls, a), expression=_p(b))


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _num(v: int | float) -> exp.Expression:
    lit = exp.Literal.number(repr(abs(v)) if isinstance(v, float) else str(abs(v)))
    return exp.Neg(this=lit) if v < 0 else lit


def _str(s: str) -> exp.Expression:
    """A string literal. One holding NUL is written as the cast of its UTF-8 bytes:
    SQLite takes no NUL in a statement's text, and ClickHouse's strings may hold it."""
    if "\0" in s:
        return exp.Cast(this=exp.HexString(this=s.encode("utf-8").hex()),
                        to=exp.DataType.build("TEXT"))
    return exp.Literal.string(s)


def _cast(e: exp.Expression, to: str) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build(to))


def _int_expr(e: exp.Expression) -> exp.Expression:
    return _cast(e, "INTEGER")



# SQLite reads a literal beyond the largest double as infinity (it has no inf keyword).
INFINITY = "9e999"


def _infinity(sign: int = 1) -> exp.Expression:
    lit = exp.Literal.number(INFINITY)
    return exp.Neg(this=lit) if sign < 0 else lit
