"""Parsing one statement, binding `?` params as literals of the tree, and checking it."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.parsers.clickhouse import ClickHouseParser
from sqlglot.tokens import TokenType

from .build import _num
from .dialect import FORMATS, _check, check_spelling, is_documented
from .errors import InvalidQuery, ParamsMismatch, QueryTimeout
from .limits import check_depth, check_parentheses, compiling


@dataclass
class Parsed:
    kind: str                      # "select", "show_tables", "show_timezones", "show_timezone"
    tree: exp.Select | None = None
    format: str | None = None      # the FORMAT clause's name, if any


def _literal_for(value: Any) -> exp.Expression:
    """A param as a literal node of the tree (never pasted into text)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return _num(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ParamsMismatch("A param is not a finite number")
        return _num(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise ParamsMismatch(f"A param of type {type(value).__name__} cannot be bound; params "
                         "are strings, numbers, booleans or null")


PARAM_PREFIX = "__ae_param_"


def _number_placeholders(sql: str, tokens: list, params: Sequence[Any]) -> str:
    """Give each `?` its position as a name ({__ae_param_0:String}, a ClickHouse query
    parameter), so that binding follows the text's order whatever the tree's order. Only
    the placeholder tokens change; no value ever enters the text."""
    marks = [t for t in tokens if t.token_type == TokenType.PLACEHOLDER and t.text == "?"]
    if len(marks) != len(params):
        raise ParamsMismatch(f"The query has {len(marks)} ? placeholder"
                             f"{'' if len(marks) == 1 else 's'} but {len(params)} "
                             f"param{'' if len(params) == 1 else 's'} were given")
    parts, last = [], 0
    for i, token in enumerate(marks):
        parts += [sql[last:token.start], f"{{{PARAM_PREFIX}{i}:String}}"]
        last = token.end + 1
    return "".join(parts) + sql[last:]


def _bind(tree: exp.Expression, params: Sequence[Any]) -> None:
    holders = [n for n in tree.walk() if isinstance(n, exp.Placeholder)]
    names = [h.name for h in holders]
    expected = [f"{PARAM_PREFIX}{i}" for i in range(len(params))]
    if sorted(names) != sorted(expected):
        raise InvalidQuery("named placeholders are not supported; use ?")
    for holder in holders:
        holder.replace(_literal_for(params[int(holder.name[len(PARAM_PREFIX):])]))


class _Parser(ClickHouseParser):
    """sqlglot's ClickHouse parser, looking at the clock every 512 steps over the tokens:
    a 64 KiB query takes it seconds on a busy machine, and no other clock runs then."""

    def __init__(self, deadline: float | None, **opts: Any):
        super().__init__(**opts)
        self._deadline = deadline
        self._steps = 0

    def _advance(self, times: int = 1) -> None:
        super()._advance(times)
        self._steps += 1
        if (not self._steps & 511 and self._deadline is not None
                and time.monotonic() > self._deadline):
            raise QueryTimeout("The query was stopped after the local time limit while it "
                               "was parsed")


def _statements(text: str, deadline: float | None) -> list[exp.Expression]:
    dialect = Dialect.get_or_raise("clickhouse")
    parser = _Parser(deadline, dialect=dialect)
    return [s for s in parser.parse(dialect.tokenize(text), text) if s is not None]


def parse(sql: str, params: Sequence[Any] = (), *, deadline: float | None = None) -> Parsed:
    """Parse, bind and check one Analytics Engine SQL statement, within the bounds of
    `limits` (nesting, depth). `deadline` (time.monotonic() seconds): parsing stops there
    with QueryTimeout."""
    with compiling():
        return _parse(sql, params, deadline)


def _parse(sql: str, params: Sequence[Any], deadline: float | None) -> Parsed:
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidQuery("the query is empty")
    if params is None:
        params = ()
    if not isinstance(params, (list, tuple)):
        raise ParamsMismatch("params must be a list")
    try:
        tokens = sqlglot.tokenize(sql, read="clickhouse")
        if tokens and tokens[0].token_type == TokenType.SHOW:
            return _parse_show(tokens)
        if tokens and tokens[0].token_type not in (TokenType.SELECT, TokenType.WITH,
                                                   TokenType.L_PAREN):
            raise InvalidQuery("only SELECT and SHOW statements are supported, not "
                               + tokens[0].text.upper())
        for token, following in zip(tokens, tokens[1:]):
            if following.token_type == TokenType.L_PAREN and token.text.isidentifier():
                check_spelling(token.text)
        check_parentheses(tokens)
        text = _number_placeholders(sql, tokens, params)
        statements = _statements(text, deadline)
    except ParseError as e:
        unknown = _unknown_call(tokens)
        if unknown is not None:  # refused for its name whatever the syntax of the call
            raise InvalidQuery(f"unknown function {unknown}; only the functions of the "
                               "Analytics Engine SQL reference are supported") from None
        raise InvalidQuery(syntax_error(sql, e)) from None
    except TokenError:
        raise InvalidQuery(_token_error(sql)) from None
    if len(statements) != 1:
        raise InvalidQuery("exactly one statement is allowed per query"
                           if statements else "the query is empty")
    tree = statements[0]
    check_depth(tree)
    if isinstance(tree, (exp.Union, exp.Intersect, exp.Except)):
        raise InvalidQuery(f"{type(tree).__name__.upper()} is not supported: a query reads "
                           "one table")
    if not isinstance(tree, exp.Select):
        if tree.args.get("with_") is not None or isinstance(tree, exp.With):
            raise InvalidQuery("WITH (common table expressions) is not supported")
        kind = tree.key.upper() if not isinstance(tree, exp.Command) else tree.name.upper()
        raise InvalidQuery(f"only SELECT and SHOW statements are supported, not {kind}")
    _bind(tree, params)
    _check(tree)
    fmt = tree.args.get("format")
    return Parsed("select", tree, fmt.name if fmt is not None else None)


def _unknown_call(tokens: list) -> str | None:
    """The first name called like a function that the reference does not document: sqlglot
    gives some ClickHouse functions a syntax of their own (`quantile(level)(x)`), so that a
    call in another form is a syntax error before it is an unknown function."""
    for before, token, following in zip([None, *tokens], tokens, tokens[1:]):
        if (token.token_type == TokenType.VAR and following.token_type == TokenType.L_PAREN
                and (before is None or before.token_type != TokenType.ALIAS)
                and not is_documented(token.text)):
            return token.text
    return None


# sqlglot names the node it could not complete; in SQL terms, what was missing.
_MISSING = {"Where": "a condition after WHERE", "Having": "a condition after HAVING",
            "And": "an expression after AND", "Or": "an expression after OR",
            "Not": "an expression after NOT", "Alias": "a name after AS",
            "Group": "an expression after GROUP BY", "Order": "an expression after ORDER BY",
            "Limit": "a number after LIMIT", "Offset": "a number after OFFSET",
            "Between": "both bounds of BETWEEN", "In": "a list after IN",
            "Interval": "a value after INTERVAL"}
_OPERATORS = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/", "Mod": "%", "EQ": "=",
              "NEQ": "!=", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<=", "Like": "LIKE",
              "ILike": "ILIKE"}
_REQUIRED = re.compile(r"Required keyword: '\w+' missing for <class '[\w.]*\.(\w+)'>")


def syntax_error(sql: str, error: ParseError) -> str:
    """A parser error in SQL terms, with line and column (1-based, as editors count)."""
    first = (error.errors or [{}])[0]
    description = str(first.get("description") or "cannot parse the query")
    line, col = first.get("line"), first.get("col")
    near = " ".join(str(first.get("highlight") or "").split())
    required = _REQUIRED.match(description)
    if required:
        node = required.group(1)
        if node in _OPERATORS:
            what = f"expected an expression after {_OPERATORS[node]}"
        else:
            what = f"expected {_MISSING.get(node, 'an expression')}"
    elif description.startswith("Expecting "):
        what = f"expected {description[len('Expecting '):]}"
    elif "Unexpected token" in description or "Invalid expression" in description:
        what = f"unexpected {near!r}" if near else "unexpected input"
    else:
        what = description[:1].lower() + description[1:]
    where = f" at line {line}, column {col}" if line and col else ""
    if near and not what.startswith("unexpected"):
        where += f" (near {near!r})"
    return f"syntax error{where}: {what}"


def _token_error(sql: str) -> str:
    """The tokenizer fails on an unclosed quote or comment; say where it opens."""
    for opener, label in (("'", "string"), ('"', "quoted name"), ("`", "quoted name"),
                          ("/*", "comment")):
        closer = "*/" if opener == "/*" else opener
        at = 0
        while True:
            start = sql.find(opener, at)
            if start < 0:
                break
            end = sql.find(closer, start + len(opener))
            while end >= 0 and closer != "*/" and sql[end - 1] == "\\":
                end = sql.find(closer, end + 1)
            if end < 0:
                line = sql.count("\n", 0, start) + 1
                col = start - (sql.rfind("\n", 0, start) + 1) + 1
                return (f"syntax error at line {line}, column {col}: unterminated {label} "
                        f"(no closing {closer})")
            at = end + len(closer)
    return "syntax error: cannot read the query text"


def _parse_show(tokens: list) -> Parsed:
    # sqlglot has no SHOW for ClickHouse: the tokenizer gives SHOW and the rest as text.
    rest = [t for t in tokens[2:] if t.token_type != TokenType.SEMICOLON]
    if rest:
        raise InvalidQuery("exactly one statement is allowed per query")
    words = tokens[1].text.split() if len(tokens) > 1 else []
    fmt_ok = len(words) == 1 or (len(words) == 3 and words[1].upper() == "FORMAT"
                                 and words[2] in FORMATS)
    what = words[0].upper() if words else ""
    if fmt_ok and what in ("TABLES", "TIMEZONES", "TIMEZONE"):
        return Parsed(f"show_{what.lower()}", None, words[2] if len(words) == 3 else None)
    raise InvalidQuery(f"SHOW {' '.join(words)} is not supported; use SHOW TABLES, "
                       "SHOW TIMEZONES or SHOW TIMEZONE")

