"""Analytics Engine SQL, answered from the local SQLite log.

Pipeline: sqlglot parses the text (ClickHouse dialect: Analytics Engine runs ClickHouse),
`?` placeholders become literals in the tree, the tree is checked against an allow-list
of the statements, clauses and functions Analytics Engine documents (SPEC §2), then it is
rewritten node by node into SQLite — plain SQL arithmetic on the integer `timestamp`
wherever possible, Python functions (`aesql_functions`) where SQLite has no equivalent —
and printed with `sql(dialect="sqlite")`. The same checked tree gives the ClickHouse text
sent to Cloudflare (`to_clickhouse`).

Values follow ClickHouse: DateTime is kept as Unix seconds and rendered
'YYYY-MM-DD hh:mm:ss' (UTC), Date as seconds at midnight rendered 'YYYY-MM-DD', `/` is a
float division, `length` counts bytes, weeks start on Monday, and every output column
carries the ClickHouse type name ClickHouse would report.

The local side is read-only in depth: a `mode=ro` connection with `query_only`, an
authorizer that lets a statement read nothing but the event table behind the dataset and
call nothing but the functions the translation emits, a progress-handler time limit and a
row cap.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.parse
import zoneinfo
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple, Sequence

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from . import aesql_functions as F

PREFIX = "Input was invalid: "
SOURCE_VIEW = "datapoints"   # storage/log.py: the data point columns over `events`
SOURCE_TABLE = "events"
SOURCE_TABLE_COLUMNS = frozenset({"", "seq", "request_id", "received_ms",
                                  *(f"blob{i}" for i in range(1, 21)),
                                  *(f"double{i}" for i in range(1, 21))})
FORMATS = ("JSON", "JSONEachRow", "TabSeparated")  # all answered as JSON over HTTP

# The columns of a dataset table, in Analytics Engine's order (SPEC §2).
AE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("dataset", "String"), ("timestamp", "DateTime"), ("_sample_interval", "UInt32"),
    ("index1", "String"),
    *((f"blob{i}", "String") for i in range(1, 21)),
    *((f"double{i}", "Float64") for i in range(1, 21)),
)


class InvalidQuery(Exception):
    """SQL outside Analytics Engine's dialect or invalid: HTTP 422."""

    def __init__(self, message: str):
        super().__init__(message if message.startswith(PREFIX) else PREFIX + message)


class ParamsMismatch(Exception):
    """The params do not fit the `?` placeholders: HTTP 400."""


class QueryTimeout(Exception):
    """The local query ran past ANALYTICS_QUERY_TIMEOUT_MS: HTTP 504."""


@dataclass
class QueryResult:
    meta: list[dict]
    rows: list[dict]
    truncated: bool = False


# -- types ---------------------------------------------------------------------------------

_INTS = {f"{s}Int{w}": (w, s == "") for w in (8, 16, 32, 64) for s in ("U", "")}
_INTS["Bool"] = (8, False)
NULL_TYPE = "Nullable(Nothing)"


def _is_int(t: str) -> bool:
    return t in _INTS


def _is_num(t: str) -> bool:
    return t in _INTS or t == "Float64"


def _is_time(t: str) -> bool:
    return t in ("DateTime", "Date")


def _int_type(width: int, signed: bool) -> str:
    return f"{'' if signed else 'U'}Int{min(width, 64)}"


def _literal_int_type(v: int) -> str:
    for w in (8, 16, 32, 64):
        if 0 <= v < 2 ** w:
            return f"UInt{w}"
        if -(2 ** (w - 1)) <= v < 0:
            return f"Int{w}"
    return "Float64"


def _arith_type(op: str, a: str, b: str) -> str:
    """ClickHouse's result type of an integer operation (the cases the dialect needs)."""
    if op == "divide" or "Float64" in (a, b) or not (_is_int(a) and _is_int(b)):
        return "Float64"
    (wa, sa), (wb, sb) = _INTS[a], _INTS[b]
    if op == "minus":
        return _int_type(max(wa, wb) * 2, True)
    if op == "modulo":
        return b if not (sa or sb) else _int_type(max(wa, wb) * 2, True)
    return _int_type(max(wa, wb) * 2, sa or sb)


class T(NamedTuple):
    """A translated SQLite expression and the ClickHouse type of its value."""
    e: exp.Expression
    t: str


# -- small builders -----------------------------------------------------------------------

def _p(e: exp.Expression) -> exp.Expression:
    """Parenthesise a compound operand: sqlglot prints trees as built, without adding
    parentheses for precedence."""
    if isinstance(e, (exp.Binary, exp.Unary, exp.Between, exp.In, exp.Like, exp.Escape,
                      exp.Not, exp.Neg)):
        return exp.Paren(this=e)
    return e


def _op(cls: type, a: exp.Expression, b: exp.Expression) -> exp.Expression:
    if cls is exp.Div:  # typed: SQLite's own `/` (sqlglot would otherwise add a CAST)
        return exp.Div(this=_p(a), expression=_p(b), typed=True)
    return cls(this=_p(a), expression=_p(b))


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _num(v: int | float) -> exp.Expression:
    lit = exp.Literal.number(repr(abs(v)) if isinstance(v, float) else str(abs(v)))
    return exp.Neg(this=lit) if v < 0 else lit


def _str(s: str) -> exp.Expression:
    return exp.Literal.string(s)


def _cast(e: exp.Expression, to: str) -> exp.Expression:
    return exp.Cast(this=e, to=exp.DataType.build(to))


def _int_expr(e: exp.Expression) -> exp.Expression:
    return _cast(e, "INTEGER")


# -- the allow-list --------------------------------------------------------------------------

# Syntax nodes a checked tree may hold besides function calls.
ALLOWED_NODES: tuple[type, ...] = (
    exp.Select, exp.From, exp.Table, exp.Subquery, exp.TableAlias, exp.Identifier,
    exp.Column, exp.Star, exp.Alias, exp.Literal, exp.Null, exp.Boolean, exp.Paren,
    exp.Neg, exp.Not, exp.And, exp.Or, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Like,
    exp.ILike, exp.Interval, exp.Var, exp.Where, exp.Group, exp.Having, exp.Order,
    exp.Ordered, exp.Limit, exp.Offset, exp.Distinct, exp.Extract,
)

# Constructs Analytics Engine rejects, and what the message says about them.
REJECTED_NODES: dict[type, str] = {
    exp.Join: "JOIN is not supported: a query reads one table",
    exp.Union: "UNION is not supported: a query reads one table",
    exp.Intersect: "INTERSECT is not supported", exp.Except: "EXCEPT is not supported",
    exp.With: "WITH (common table expressions) is not supported",
    exp.CTE: "WITH (common table expressions) is not supported",
    exp.Case: "CASE WHEN is not supported; use if(cond, then, else)",
    exp.Window: "window functions (OVER) are not supported",
    exp.Lateral: "ARRAY JOIN / LATERAL is not supported",
}

# The documented functions (SPEC §2 and Cloudflare's SQL reference): name -> (kind, args
# range). `kind` is "agg" for aggregates.
FUNCTIONS: dict[str, tuple[str, int, int]] = {
    "count": ("agg", 0, 1), "sum": ("agg", 1, 1), "avg": ("agg", 1, 1),
    "min": ("agg", 1, 1), "max": ("agg", 1, 1),
    "quantileExactWeighted": ("agg", 2, 2), "quantileWeighted": ("agg", 3, 3),
    "argMax": ("agg", 2, 2), "argMin": ("agg", 2, 2),
    "first_value": ("agg", 1, 1), "last_value": ("agg", 1, 1),
    "topK": ("agg", 1, 1), "topKWeighted": ("agg", 2, 2),
    "countIf": ("agg", 1, 1), "sumIf": ("agg", 2, 2), "avgIf": ("agg", 2, 2),
    "if": ("scalar", 3, 3), "now": ("scalar", 0, 0), "today": ("scalar", 0, 0),
    "toDateTime": ("scalar", 1, 2), "toUnixTimestamp": ("scalar", 1, 2),
    "formatDateTime": ("scalar", 2, 3), "toStartOfInterval": ("scalar", 2, 3),
    "toStartOfYear": ("scalar", 1, 1), "toStartOfQuarter": ("scalar", 1, 1),
    "toStartOfMonth": ("scalar", 1, 1), "toStartOfWeek": ("scalar", 1, 2),
    "toStartOfDay": ("scalar", 1, 1), "toStartOfHour": ("scalar", 1, 1),
    "toStartOfFifteenMinutes": ("scalar", 1, 1), "toStartOfTenMinutes": ("scalar", 1, 1),
    "toStartOfFiveMinutes": ("scalar", 1, 1), "toStartOfMinute": ("scalar", 1, 1),
    "toYear": ("scalar", 1, 1), "toMonth": ("scalar", 1, 1),
    "toDayOfMonth": ("scalar", 1, 1), "toDayOfWeek": ("scalar", 1, 1),
    "toHour": ("scalar", 1, 1), "toMinute": ("scalar", 1, 1), "toSecond": ("scalar", 1, 1),
    "toYYYYMM": ("scalar", 1, 1), "intDiv": ("scalar", 2, 2),
    "log": ("scalar", 1, 1), "ln": ("scalar", 1, 1), "pow": ("scalar", 2, 2),
    "round": ("scalar", 1, 2), "floor": ("scalar", 1, 1), "ceil": ("scalar", 1, 1),
    "length": ("scalar", 1, 1), "empty": ("scalar", 1, 1), "lower": ("scalar", 1, 1),
    "upper": ("scalar", 1, 1), "lowerUTF8": ("scalar", 1, 1), "upperUTF8": ("scalar", 1, 1),
    "startsWith": ("scalar", 2, 2), "endsWith": ("scalar", 2, 2),
    "position": ("scalar", 2, 2), "substring": ("scalar", 2, 3),
    "format": ("scalar", 1, 64), "toUInt8": ("scalar", 1, 1), "toUInt32": ("scalar", 1, 1),
    "bitAnd": ("scalar", 2, 2), "bitOr": ("scalar", 2, 2), "bitXor": ("scalar", 2, 2),
    "bitNot": ("scalar", 1, 1), "bitShiftLeft": ("scalar", 2, 2),
    "bitShiftRight": ("scalar", 2, 2), "bitCount": ("scalar", 1, 1),
    "bitTest": ("scalar", 2, 2), "bitRotateLeft": ("scalar", 2, 2),
    "bitRotateRight": ("scalar", 2, 2), "bitHammingDistance": ("scalar", 2, 2),
    "bin": ("scalar", 1, 1), "hex": ("scalar", 1, 1),
}
PARAMETRIC = {"quantileExactWeighted": 1, "topK": 1, "topKWeighted": 1}
# Classic SQL names ClickHouse also accepts in any case.
_CASE_INSENSITIVE = {n.lower(): n for n in (
    "count", "sum", "avg", "min", "max", "if", "log", "ln", "pow", "round", "floor", "ceil",
    "length", "lower", "upper", "position", "substring", "hex", "bin", "format")}
_ALIASES = {"power": "pow", "substr": "substring"}

# sqlglot parses some functions into typed nodes; their Analytics Engine names.
_CLASS_NAMES: dict[type, str] = {
    exp.Count: "count", exp.Sum: "sum", exp.Avg: "avg", exp.Min: "min", exp.Max: "max",
    exp.ArgMax: "argMax", exp.ArgMin: "argMin", exp.FirstValue: "first_value",
    exp.LastValue: "last_value", exp.CountIf: "countIf", exp.If: "if",
    exp.TimeToStr: "formatDateTime", exp.DayOfWeekIso: "toDayOfWeek", exp.Ln: "log",
    exp.Pow: "pow", exp.Round: "round", exp.Floor: "floor", exp.Ceil: "ceil",
    exp.Length: "length", exp.Lower: "lower", exp.Upper: "upper",
    exp.StartsWith: "startsWith", exp.EndsWith: "endsWith", exp.StrPosition: "position",
    exp.Substring: "substring", exp.Format: "format", exp.Hex: "hex",
}
_TRUNC_NAMES = {"YEAR": "toStartOfYear", "QUARTER": "toStartOfQuarter",
                "MONTH": "toStartOfMonth", "WEEK": "toStartOfWeek", "DAY": "toStartOfDay",
                "HOUR": "toStartOfHour", "MINUTE": "toStartOfMinute"}
_UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400, "WEEK": 604800}
_UNIT_MONTHS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}
_EXTRACT = {"YEAR": "toYear", "MONTH": "toMonth", "DAY": "toDayOfMonth", "HOUR": "toHour",
            "MINUTE": "toMinute", "SECOND": "toSecond"}


class Call(NamedTuple):
    name: str
    params: list[exp.Expression]   # the (level) of quantileExactWeighted(level)(x, w)
    args: list[exp.Expression]
    distinct: bool = False


def _display_name(node: exp.Expression) -> str:
    if isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc, exp.CombinedAggFunc,
                         exp.ParameterizedAgg)):
        return node.name
    text = node.sql("clickhouse")
    return text.split("(", 1)[0] if "(" in text else type(node).__name__


def _call(node: exp.Func) -> Call:
    """The Analytics Engine name and arguments of a function node, or InvalidQuery."""
    params: list[exp.Expression] = []
    distinct = False
    if isinstance(node, exp.ParameterizedAgg):
        name, params, args = node.name, list(node.expressions), list(node.args["params"])
    elif isinstance(node, (exp.Anonymous, exp.AnonymousAggFunc, exp.CombinedAggFunc)):
        name, args = node.name, list(node.expressions)
    elif isinstance(node, exp.TimestampTrunc):
        unit = node.text("unit").upper()
        if unit not in _TRUNC_NAMES or node.args.get("zone"):
            raise InvalidQuery(f"function {_display_name(node)} is not supported")
        name, args = _TRUNC_NAMES[unit], [node.this]
    elif type(node) in _CLASS_NAMES:
        name = _CLASS_NAMES[type(node)]
        if isinstance(node, exp.Ln) and node.sql("clickhouse").lower().startswith("ln("):
            name = "ln"
        args = []
        for key in node.arg_types:
            value = node.args.get(key)
            if value is None:
                continue
            args.extend(v for v in (value if isinstance(value, list) else [value])
                        if isinstance(v, exp.Expression))
        if args and isinstance(args[0], exp.Distinct):
            if name not in ("count", "sum", "avg") or len(args[0].expressions) != 1:
                raise InvalidQuery(f"DISTINCT is not supported in {name}()")
            distinct, args = True, list(args[0].expressions) + args[1:]
        if name == "count" and any(isinstance(a, exp.Star) for a in args):
            raise InvalidQuery("count(*) is not supported; use count()")
    else:
        raise InvalidQuery(f"unknown function {_display_name(node)}; only the functions "
                           "of the Analytics Engine SQL reference are supported")
    if name not in FUNCTIONS:
        lowered = name.lower()
        if name in _ALIASES:
            name = _ALIASES[name]
        elif lowered in _CASE_INSENSITIVE:
            name = _CASE_INSENSITIVE[lowered]
        else:
            raise InvalidQuery(f"unknown function {name}; only the functions of the "
                               "Analytics Engine SQL reference are supported")
    _, low, high = FUNCTIONS[name]
    if isinstance(node, exp.ParameterizedAgg) and name not in PARAMETRIC:
        raise InvalidQuery(f"function {name} takes no parameters")
    if name in PARAMETRIC and len(params) > PARAMETRIC[name]:
        raise InvalidQuery(f"function {name} takes at most {PARAMETRIC[name]} parameter")
    if name == "quantileExactWeighted" and not params:
        params = [exp.Literal.number("0.5")]
    if not low <= len(args) <= high:
        raise InvalidQuery(f"function {name} takes {low}"
                           f"{'' if low == high else f' to {high}'} arguments, "
                           f"{len(args)} given")
    return Call(name, params, args, distinct)


def _check(tree: exp.Expression) -> None:
    """Every node of the tree is on the allow-list (an unknown node is an error)."""
    for node in tree.walk():
        cls = type(node)
        for rejected, label in REJECTED_NODES.items():
            if isinstance(node, rejected):
                raise InvalidQuery(label)
        if isinstance(node, ALLOWED_NODES):  # before Func: AND/OR are Func subclasses
            if isinstance(node, exp.Select):
                _check_select(node)
            if isinstance(node, exp.Ordered) and node.args.get("with_fill"):
                raise InvalidQuery("ORDER BY ... WITH FILL is not supported")
            continue
        if isinstance(node, exp.Func):
            _call(node)  # raises on anything not documented
            continue
        if isinstance(node, exp.Placeholder):
            raise ParamsMismatch("A ? placeholder has no value in params")
        raise InvalidQuery(f"{_node_label(node)} is not supported in Analytics Engine SQL")


_SELECT_ARGS = {"expressions", "from_", "where", "group", "having", "order", "limit",
                "offset", "format"}


def _check_select(node: exp.Select) -> None:
    for key, value in node.args.items():
        if value in (None, [], False):
            continue
        if key == "distinct":
            raise InvalidQuery("SELECT DISTINCT is not supported; use GROUP BY")
        if key == "joins":
            raise InvalidQuery("JOIN is not supported: a query reads one table")
        if key == "with_":
            raise InvalidQuery("WITH (common table expressions) is not supported")
        if key not in _SELECT_ARGS:
            raise InvalidQuery(f"the {key.upper().rstrip('_')} clause is not supported")
    fmt = node.args.get("format")
    if fmt is not None and fmt.name not in FORMATS:
        raise InvalidQuery(f"FORMAT {fmt.name} is not supported; use one of "
                           + ", ".join(FORMATS))


def _node_label(node: exp.Expression) -> str:
    try:
        text = node.sql("clickhouse")
    except Exception:  # noqa: BLE001 - only for the message
        text = ""
    text = " ".join(text.split())
    label = type(node).__name__
    return f"{label} ({text[:40]})" if text else label


# -- parsing and binding ------------------------------------------------------------------------

@dataclass
class Parsed:
    kind: str                      # "select", "show_tables", "show_timezones", "show_timezone"
    tree: exp.Select | None = None


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


def parse(sql: str, params: Sequence[Any] = ()) -> Parsed:
    """Parse, bind and check one Analytics Engine SQL statement."""
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
        text = _number_placeholders(sql, tokens, params)
        statements = [s for s in sqlglot.parse(text, read="clickhouse") if s is not None]
    except (ParseError, TokenError) as e:
        first = str(e).splitlines()[0] if str(e) else "cannot parse the query"
        raise InvalidQuery(f"syntax error: {first}") from None
    if len(statements) != 1:
        raise InvalidQuery("exactly one statement is allowed per query"
                           if statements else "the query is empty")
    tree = statements[0]
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
    return Parsed("select", tree)


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
        return Parsed(f"show_{what.lower()}")
    raise InvalidQuery(f"SHOW {' '.join(words)} is not supported; use SHOW TABLES, "
                       "SHOW TIMEZONES or SHOW TIMEZONE")


# -- ClickHouse column names ------------------------------------------------------------------------

_OP_NAMES: dict[type, str] = {
    exp.Add: "plus", exp.Sub: "minus", exp.Mul: "multiply", exp.Div: "divide",
    exp.Mod: "modulo", exp.EQ: "equals", exp.NEQ: "notEquals", exp.GT: "greater",
    exp.GTE: "greaterOrEquals", exp.LT: "less", exp.LTE: "lessOrEquals", exp.And: "and",
    exp.Or: "or",
}


def _literal_name(node: exp.Literal) -> str:
    if node.is_string:
        return "'" + node.this.replace("\\", "\\\\").replace("'", "\\'") + "'"
    text = node.this
    if any(c in text for c in ".eE"):
        value = float(text)
        return f"{int(value)}." if value == int(value) and abs(value) < 1e21 else repr(value)
    return text


def ch_name(node: exp.Expression) -> str:
    """The name ClickHouse gives an unaliased select expression (its functional form)."""
    if isinstance(node, exp.Alias):
        return node.alias
    if isinstance(node, exp.Paren):
        return ch_name(node.this)
    if isinstance(node, exp.Column):
        return node.name
    if isinstance(node, exp.Literal):
        return _literal_name(node)
    if isinstance(node, exp.Null):
        return "NULL"
    if isinstance(node, exp.Boolean):
        return "true" if node.this else "false"
    if isinstance(node, exp.Neg):
        if isinstance(node.this, exp.Literal) and not node.this.is_string:
            return "-" + _literal_name(node.this)
        return f"negate({ch_name(node.this)})"
    if isinstance(node, exp.Not):
        inner = node.this
        if isinstance(inner, exp.In):
            return f"notIn({ch_name(inner.this)}, {_in_list_name(inner)})"
        return f"not({ch_name(inner)})"
    if type(node) in _OP_NAMES:
        return f"{_OP_NAMES[type(node)]}({ch_name(node.this)}, {ch_name(node.expression)})"
    if isinstance(node, (exp.Like, exp.ILike)):
        fn = "like" if isinstance(node, exp.Like) else "ilike"
        if node.args.get("negate"):
            fn = "notLike" if fn == "like" else "notILike"
        return f"{fn}({ch_name(node.this)}, {ch_name(node.expression)})"
    if isinstance(node, exp.In):
        return f"in({ch_name(node.this)}, {_in_list_name(node)})"
    if isinstance(node, exp.Between):
        a = ch_name(node.this)
        return (f"and(greaterOrEquals({a}, {ch_name(node.args['low'])}), "
                f"lessOrEquals({a}, {ch_name(node.args['high'])}))")
    if isinstance(node, exp.Interval):
        unit = node.text("unit").capitalize()
        return f"toInterval{unit}({ch_name(node.this)})"
    if isinstance(node, exp.Extract):
        return f"{_EXTRACT.get(node.this.name.upper(), 'extract')}({ch_name(node.expression)})"
    if isinstance(node, exp.Func):
        call = _call(node)
        name = "countDistinct" if call.name == "count" and call.distinct else call.name
        if call.distinct and name != "countDistinct":
            name += "Distinct"
        params = f"({', '.join(ch_name(p) for p in call.params)})" if call.params else ""
        return f"{name}{params}({', '.join(ch_name(a) for a in call.args)})"
    return node.sql("clickhouse")


def _in_list_name(node: exp.In) -> str:
    items = [ch_name(e) for e in node.expressions]
    return items[0] if len(items) == 1 else f"({', '.join(items)})"


# -- translation to SQLite ----------------------------------------------------------------------

@dataclass
class Scope:
    """Names visible in one SELECT: its source's columns and its own aliases."""
    columns: dict[str, T]
    aliases: dict[str, exp.Expression] = field(default_factory=dict)
    resolving: set[str] = field(default_factory=set)
    qualifiers: set[str] = field(default_factory=set)


@dataclass
class Compiled:
    sql: str | None                   # None for SHOW
    meta: list[dict]
    static_rows: list[dict] | None = None


class Translator:
    """Rewrites a checked Analytics Engine SELECT into SQLite."""

    def __init__(self, dataset: str):
        self.dataset = dataset

    # statements ----------------------------------------------------------------------------

    def select(self, node: exp.Select) -> tuple[exp.Select, list[tuple[str, str]]]:
        scope = self._source(node.args.get("from_"))
        projections: list[tuple[str, exp.Expression]] = []
        for item in node.expressions:
            if isinstance(item, exp.Star):
                projections.extend((name, exp.column(name)) for name in scope.columns)
            elif isinstance(item, exp.Column) and isinstance(item.this, exp.Star):
                projections.extend((name, exp.column(name)) for name in scope.columns)
            else:
                projections.append((ch_name(item), item.this if isinstance(item, exp.Alias)
                                    else item))
        for name, expr in projections:
            if expr is not None and not (isinstance(expr, exp.Column) and expr.name == name):
                scope.aliases.setdefault(name, expr)
        out: list[exp.Expression] = []
        columns: list[tuple[str, str]] = []
        for name, expr in projections:
            scope.resolving.add(name)  # inside its own definition a name is the column
            typed = self.expr(expr, scope)
            scope.resolving.discard(name)
            out.append(exp.Alias(this=typed.e, alias=exp.to_identifier(name, quoted=True)))
            columns.append((name, typed.t))
        result = exp.Select(expressions=out)
        source = node.args.get("from_")
        if source is not None:
            result.set("from_", exp.From(this=self._from_sql(source.this)))
        if node.args.get("where"):
            result.set("where", exp.Where(this=self.expr(node.args["where"].this, scope).e))
        if node.args.get("group"):
            result.set("group", exp.Group(expressions=[
                self._position_or_expr(g, scope) for g in node.args["group"].expressions]))
        if node.args.get("having"):
            result.set("having", exp.Having(this=self.expr(node.args["having"].this, scope).e))
        if node.args.get("order"):
            result.set("order", exp.Order(expressions=[
                exp.Ordered(this=self._position_or_expr(o.this, scope),
                            desc=bool(o.args.get("desc")),
                            # ClickHouse puts NULL (and NaN) last either way
                            nulls_first=False)
                for o in node.args["order"].expressions]))
        limit = self._count(node.args.get("limit"), "LIMIT")
        offset = self._count(node.args.get("offset"), "OFFSET")
        if limit is not None or offset is not None:
            result.set("limit", exp.Limit(expression=_num(-1 if limit is None else limit)))
        if offset is not None:
            result.set("offset", exp.Offset(expression=_num(offset)))
        return result, columns

    def _count(self, clause: exp.Expression | None, label: str) -> int | None:
        if clause is None:
            return None
        value = clause.expression
        if isinstance(value, exp.Column) and value.name.upper() == "ALL" and label == "LIMIT":
            return None
        if isinstance(value, exp.Literal) and not value.is_string and str(value.this).isdigit():
            return int(value.this)
        raise InvalidQuery(f"{label} takes a non-negative integer")

    def _position_or_expr(self, node: exp.Expression, scope: Scope) -> exp.Expression:
        if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
            return exp.Literal.number(node.this)  # GROUP BY 1 / ORDER BY 2: positions
        return self.expr(node, scope).e

    def _source(self, source: exp.From | None) -> Scope:
        if source is None:
            return Scope(columns={})
        this = source.this
        if isinstance(this, exp.Table):
            if this.args.get("db") or this.args.get("catalog") or this.name != self.dataset:
                raise InvalidQuery(f"unknown table {this.sql('clickhouse')}; the only table "
                                   f"is {self.dataset} (SHOW TABLES)")
            columns = {name: (T(_str(self.dataset), t) if name == "dataset"
                              else T(exp.column(name), t)) for name, t in AE_COLUMNS}
            qualifiers = {self.dataset} | ({this.alias} if this.alias else set())
            return Scope(columns=columns, qualifiers=qualifiers)
        if isinstance(this, exp.Subquery) and isinstance(this.this, exp.Select):
            _, inner_columns = self.select(this.this)
            columns = {name: T(exp.column(name, quoted=True), t) for name, t in inner_columns}
            return Scope(columns=columns, qualifiers={this.alias} if this.alias else set())
        raise InvalidQuery(f"FROM {this.sql('clickhouse')} is not supported: read the "
                           f"dataset table or a subquery")

    def _from_sql(self, this: exp.Expression) -> exp.Expression:
        if isinstance(this, exp.Table):
            return exp.Table(this=exp.to_identifier(SOURCE_VIEW))
        inner, _ = self.select(this.this)
        return exp.Subquery(this=inner)

    # expressions ------------------------------------------------------------------------------

    def expr(self, node: exp.Expression, scope: Scope) -> T:
        method = getattr(self, f"_x_{type(node).__name__}", None)
        if method is not None:
            return method(node, scope)
        if isinstance(node, exp.Func):
            return self.call(_call(node), scope)
        raise InvalidQuery(f"{_node_label(node)} is not supported in Analytics Engine SQL")

    def _x_Paren(self, node: exp.Paren, scope: Scope) -> T:
        inner = self.expr(node.this, scope)
        return T(exp.Paren(this=inner.e), inner.t)

    def _x_Alias(self, node: exp.Alias, scope: Scope) -> T:
        return self.expr(node.this, scope)

    def _x_Column(self, node: exp.Column, scope: Scope) -> T:
        name = node.name
        if node.table and node.table not in scope.qualifiers:
            raise InvalidQuery(f"unknown table {node.table} in {node.sql('clickhouse')}")
        if not node.table and name in scope.aliases and name not in scope.resolving:
            scope.resolving.add(name)
            try:
                return self.expr(scope.aliases[name], scope)
            finally:
                scope.resolving.discard(name)
        if name in scope.columns:
            return scope.columns[name]
        raise InvalidQuery(f"unknown column {name}; the dataset has dataset, timestamp, "
                           "_sample_interval, index1, blob1..blob20, double1..double20")

    def _x_Literal(self, node: exp.Literal, scope: Scope) -> T:
        if node.is_string:
            return T(_str(node.this), "String")
        text = node.this
        try:
            value = int(text)
            return T(exp.Literal.number(text), _literal_int_type(value))
        except ValueError:
            return T(exp.Literal.number(repr(float(text))), "Float64")

    def _x_Null(self, node: exp.Null, scope: Scope) -> T:
        return T(exp.Null(), NULL_TYPE)

    def _x_Boolean(self, node: exp.Boolean, scope: Scope) -> T:
        return T(exp.Literal.number(1 if node.this else 0), "Bool")

    def _x_Neg(self, node: exp.Neg, scope: Scope) -> T:
        inner = self.expr(node.this, scope)
        if isinstance(node.this, exp.Literal) and _is_int(inner.t):
            return T(exp.Neg(this=inner.e), _literal_int_type(-int(node.this.this)))
        if _is_int(inner.t):
            width, signed = _INTS[inner.t]
            return T(exp.Neg(this=_p(inner.e)), _int_type(width if signed else width * 2, True))
        return T(exp.Neg(this=_p(inner.e)), "Float64")

    def _x_Not(self, node: exp.Not, scope: Scope) -> T:
        return T(exp.Not(this=_p(self.expr(node.this, scope).e)), "UInt8")

    def _x_And(self, node: exp.Expression, scope: Scope) -> T:
        return T(_op(type(node), self.expr(node.this, scope).e,
                     self.expr(node.expression, scope).e), "UInt8")

    _x_Or = _x_And

    def _arith(self, node: exp.Binary, scope: Scope) -> T:
        op = _OP_NAMES[type(node)]
        if isinstance(node.expression, exp.Interval) or isinstance(node.this, exp.Interval):
            return self._interval_arith(node, op, scope)
        a, b = self.expr(node.this, scope), self.expr(node.expression, scope)
        if _is_time(a.t) or _is_time(b.t):
            if op == "minus" and _is_time(a.t) and _is_time(b.t):
                return T(_op(exp.Sub, a.e, b.e), "Int32")
            if op in ("plus", "minus") and (_is_int(a.t) or _is_int(b.t)):
                return T(_op(type(node), a.e, b.e), a.t if _is_time(a.t) else b.t)
            raise InvalidQuery(f"{op} of {a.t} and {b.t} is not supported")
        for side in (a, b):
            if not (_is_num(side.t) or side.t == NULL_TYPE):
                raise InvalidQuery(f"{op} needs numbers, got {side.t}")
        t = _arith_type(op, a.t, b.t)
        if op == "divide":
            return T(_op(exp.Div, _cast(a.e, "REAL"), b.e), "Float64")
        if op == "modulo" and t == "Float64":
            return T(_fn("mod", a.e, b.e), t)
        return T(_op(type(node), a.e, b.e), t)

    _x_Add = _x_Sub = _x_Mul = _x_Div = _x_Mod = _arith

    def _interval_arith(self, node: exp.Binary, op: str, scope: Scope) -> T:
        if not isinstance(node.expression, exp.Interval) or op not in ("plus", "minus"):
            raise InvalidQuery("INTERVAL can only be added to or subtracted from a date")
        base = self.expr(node.this, scope)
        if not _is_time(base.t):
            raise InvalidQuery(f"INTERVAL arithmetic needs a DateTime, got {base.t}")
        n, unit = self._interval(node.expression)
        if op == "minus":
            n = -n
        if unit in _UNIT_MONTHS:
            return T(_fn("ae_add_months", base.e, _num(n * _UNIT_MONTHS[unit])), base.t)
        t = base.t if unit in ("DAY", "WEEK") else "DateTime"
        return T(_op(exp.Add, base.e, _num(n * _UNIT_SECONDS[unit])), t)

    def _interval(self, node: exp.Expression) -> tuple[int, str]:
        if not isinstance(node, exp.Interval):
            raise InvalidQuery("expected INTERVAL 'n' UNIT")
        unit = node.text("unit").upper().rstrip("S") if node.args.get("unit") else ""
        value = node.this
        text = value.this if isinstance(value, exp.Literal) else None
        if unit not in _UNIT_SECONDS and unit not in _UNIT_MONTHS:
            raise InvalidQuery(f"INTERVAL unit {unit or '?'} is not supported")
        try:
            n = int(str(text).strip())
        except ValueError:
            raise InvalidQuery("INTERVAL takes a whole number, e.g. INTERVAL '1' DAY") from None
        return n, unit

    def _x_Interval(self, node: exp.Interval, scope: Scope) -> T:
        raise InvalidQuery("INTERVAL is only supported in date arithmetic and "
                           "toStartOfInterval")

    def _compare(self, node: exp.Binary, scope: Scope) -> T:
        a, b = self.expr(node.this, scope), self.expr(node.expression, scope)
        a, b = self._coerce_pair(a, b, node.this, node.expression)
        return T(_op(type(node), a.e, b.e), "UInt8")

    _x_EQ = _x_NEQ = _x_GT = _x_GTE = _x_LT = _x_LTE = _compare

    def _coerce_pair(self, a: T, b: T, na: exp.Expression, nb: exp.Expression) -> tuple[T, T]:
        """DateTime compared with a string: the string is a time, as in ClickHouse."""
        if _is_time(a.t) and b.t == "String":
            b = self._as_time(b, nb)
        elif _is_time(b.t) and a.t == "String":
            a = self._as_time(a, na)
        return a, b

    def _as_time(self, value: T, node: exp.Expression) -> T:
        if isinstance(node, exp.Literal) and node.is_string:
            try:
                return T(_num(F.parse_datetime(node.this)), "DateTime")
            except ValueError as e:
                raise InvalidQuery(str(e)) from None
        return T(_fn("ae_parse_datetime", value.e), "DateTime")

    def _x_In(self, node: exp.In, scope: Scope) -> T:
        if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
            raise InvalidQuery("IN takes a list of values")
        a = self.expr(node.this, scope)
        items = []
        for item in node.expressions:
            value = self.expr(item, scope)
            if _is_time(a.t) and value.t == "String":
                value = self._as_time(value, item)
            items.append(value.e)
        return T(exp.In(this=_p(a.e), expressions=items), "UInt8")

    def _x_Between(self, node: exp.Between, scope: Scope) -> T:
        a = self.expr(node.this, scope)
        low = self.expr(node.args["low"], scope)
        high = self.expr(node.args["high"], scope)
        _, low = self._coerce_pair(a, low, node.this, node.args["low"])
        _, high = self._coerce_pair(a, high, node.this, node.args["high"])
        return T(exp.Between(this=_p(a.e), low=_p(low.e), high=_p(high.e)), "UInt8")

    def _x_Like(self, node: exp.Like, scope: Scope) -> T:
        a, b = self.expr(node.this, scope), self.expr(node.expression, scope)
        if isinstance(node, exp.ILike):  # case-insensitive: compare lower-cased
            a = T(_fn("ae_lower_utf8", a.e), a.t)
            b = T(_fn("ae_lower_utf8", b.e), b.t)
        like = exp.Escape(this=exp.Like(this=_p(a.e), expression=_p(b.e)),
                          expression=_str("\\"))
        return T(exp.Not(this=exp.Paren(this=like)) if node.args.get("negate") else like,
                 "UInt8")

    _x_ILike = _x_Like

    def _x_Extract(self, node: exp.Extract, scope: Scope) -> T:
        unit = node.this.name.upper()
        if unit not in _EXTRACT:
            raise InvalidQuery(f"extract({unit} FROM ...) is not supported")
        return self.call(Call(_EXTRACT[unit], [], [node.expression]), scope)

    # functions ------------------------------------------------------------------------------------

    def call(self, call: Call, scope: Scope) -> T:
        handler = getattr(self, f"_f_{call.name}", None)
        if handler is None:  # an allow-listed name without a translation is a defect
            raise InvalidQuery(f"function {call.name} is not supported locally")
        args = [T(a, "Interval") if isinstance(a, exp.Interval) else self.expr(a, scope)
                for a in call.args]
        return handler(call, args, scope)

    def _time_arg(self, args: list[T], call: Call, index: int = 0) -> T:
        value = args[index]
        if value.t == "String":
            return self._as_time(value, call.args[index])
        if not _is_time(value.t):
            raise InvalidQuery(f"{call.name} needs a DateTime, got {value.t}")
        return value

    def _check_tz(self, call: Call, args: list[T], index: int) -> None:
        if len(args) > index:
            tz = call.args[index]
            if not (isinstance(tz, exp.Literal) and tz.is_string
                    and tz.this in ("UTC", "Etc/UTC", "GMT", "Etc/GMT")):
                raise InvalidQuery(f"{call.name}: only the UTC time zone is supported locally")

    # aggregates
    def _f_count(self, call: Call, args: list[T], scope: Scope) -> T:
        if not args:
            return T(exp.Count(this=exp.Star()), "UInt64")
        inner = exp.Distinct(expressions=[args[0].e]) if call.distinct else args[0].e
        return T(exp.Count(this=inner), "UInt64")

    def _sum_type(self, t: str) -> str:
        if _is_int(t):
            return "Int64" if _INTS[t][1] else "UInt64"
        if t in ("Float64", NULL_TYPE):
            return "Float64"
        raise InvalidQuery(f"sum needs numbers, got {t}")

    def _f_sum(self, call: Call, args: list[T], scope: Scope) -> T:
        inner = exp.Distinct(expressions=[args[0].e]) if call.distinct else args[0].e
        # ClickHouse sums an empty set to 0, SQLite to NULL
        return T(_fn("COALESCE", exp.Sum(this=inner), _num(0)), self._sum_type(args[0].t))

    def _f_avg(self, call: Call, args: list[T], scope: Scope) -> T:
        if not _is_num(args[0].t):
            raise InvalidQuery(f"avg needs numbers, got {args[0].t}")
        inner = exp.Distinct(expressions=[args[0].e]) if call.distinct else args[0].e
        return T(exp.Avg(this=inner), "Float64")

    def _default(self, t: str) -> exp.Expression:
        return _str("") if t == "String" else _num(0)

    def _f_min(self, call: Call, args: list[T], scope: Scope) -> T:
        fn = exp.Min if call.name == "min" else exp.Max
        return T(_fn("COALESCE", fn(this=args[0].e), self._default(args[0].t)), args[0].t)

    _f_max = _f_min

    def _level(self, node: exp.Expression) -> exp.Expression:
        value = node.this if isinstance(node, exp.Literal) else None
        try:
            level = float(value) if value is not None and not node.is_string else -1.0
        except ValueError:
            level = -1.0
        if not 0 <= level <= 1:
            raise InvalidQuery("the quantile level must be a number between 0 and 1")
        return exp.Literal.number(repr(level))

    def _quantile_type(self, t: str) -> str:
        if not (_is_num(t) or _is_time(t)):
            raise InvalidQuery(f"quantiles need numbers, got {t}")
        return t

    def _f_quantileExactWeighted(self, call: Call, args: list[T], scope: Scope) -> T:
        level = self._level(call.params[0])
        return T(_fn("ae_quantile_weighted", level, args[0].e, args[1].e),
                 self._quantile_type(args[0].t))

    def _f_quantileWeighted(self, call: Call, args: list[T], scope: Scope) -> T:
        # Cloudflare documents quantileExactWeighted(level)(x, w) as its alias form.
        level = self._level(call.args[0])
        return T(_fn("ae_quantile_weighted", level, args[1].e, args[2].e),
                 self._quantile_type(args[1].t))

    def _f_argMax(self, call: Call, args: list[T], scope: Scope) -> T:
        fn = "ae_arg_max" if call.name == "argMax" else "ae_arg_min"
        return T(_fn("COALESCE", _fn(fn, args[0].e, args[1].e), self._default(args[0].t)),
                 args[0].t)

    _f_argMin = _f_argMax

    def _f_first_value(self, call: Call, args: list[T], scope: Scope) -> T:
        fn = "ae_first_value" if call.name == "first_value" else "ae_last_value"
        return T(_fn("COALESCE", _fn(fn, args[0].e), self._default(args[0].t)), args[0].t)

    _f_last_value = _f_first_value

    def _k(self, call: Call) -> exp.Expression:
        if not call.params:
            return _num(10)
        p = call.params[0]
        if not (isinstance(p, exp.Literal) and not p.is_string and p.this.isdigit()
                and int(p.this) > 0):
            raise InvalidQuery(f"{call.name}(k): k must be a positive integer")
        return exp.Literal.number(p.this)

    def _f_topK(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_fn("ae_top_k", self._k(call), args[0].e), f"Array({args[0].t})")

    def _f_topKWeighted(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_fn("ae_top_k_weighted", self._k(call), args[0].e, args[1].e),
                 f"Array({args[0].t})")

    def _f_countIf(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_fn("COALESCE", exp.Sum(this=_fn("IIF", args[0].e, _num(1), _num(0))),
                     _num(0)), "UInt64")

    def _f_sumIf(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_fn("COALESCE", exp.Sum(this=_fn("IIF", args[1].e, args[0].e, _num(0))),
                     _num(0)), self._sum_type(args[0].t))

    def _f_avgIf(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(exp.Avg(this=_fn("IIF", args[1].e, args[0].e, exp.Null())), "Float64")

    # conditionals and time
    def _f_if(self, call: Call, args: list[T], scope: Scope) -> T:
        then, other = args[1], args[2]
        if then.t == other.t:
            t = then.t
        elif _is_num(then.t) and _is_num(other.t):
            t = _arith_type("plus", then.t, other.t) if "Float64" in (then.t, other.t) \
                else max(then.t, other.t, key=lambda x: _INTS[x][0])
        elif NULL_TYPE in (then.t, other.t):
            t = then.t if other.t == NULL_TYPE else other.t
        else:
            raise InvalidQuery(f"if: branches of types {then.t} and {other.t} do not match")
        return T(_fn("IIF", args[0].e, then.e, other.e), t)

    def _f_now(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(exp.Placeholder(this="now"), "DateTime")

    def _f_today(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(exp.Placeholder(this="today"), "Date")

    def _f_toDateTime(self, call: Call, args: list[T], scope: Scope) -> T:
        self._check_tz(call, args, 1)
        value = args[0]
        if _is_time(value.t):
            return T(value.e, "DateTime")
        if value.t == "String":
            return self._as_time(value, call.args[0])
        if _is_num(value.t):
            return T(_int_expr(value.e), "DateTime")
        raise InvalidQuery(f"toDateTime of {value.t} is not supported")

    def _f_toUnixTimestamp(self, call: Call, args: list[T], scope: Scope) -> T:
        self._check_tz(call, args, 1)
        return T(self._time_arg(args, call).e, "UInt32")

    def _f_formatDateTime(self, call: Call, args: list[T], scope: Scope) -> T:
        self._check_tz(call, args, 2)
        return T(_fn("ae_format_datetime", self._time_arg(args, call).e, args[1].e), "String")

    def _start_of_seconds(self, t: exp.Expression, size: int) -> exp.Expression:
        # Plain integer arithmetic on Unix seconds: no Python call per row.
        return _op(exp.Sub, t, _op(exp.Mod, t, _num(size)))

    def _f_toStartOfInterval(self, call: Call, args: list[T], scope: Scope) -> T:
        self._check_tz(call, args, 2)
        t = self._time_arg(args, call).e
        n, unit = self._interval(call.args[1])
        if n <= 0:
            raise InvalidQuery("toStartOfInterval needs a positive interval")
        if unit in _UNIT_MONTHS:
            return T(_fn("ae_start_of_months", t, _num(n * _UNIT_MONTHS[unit])), "Date")
        if unit == "WEEK":  # weeks counted from Monday 1970-01-05 (day 4)
            days = _op(exp.Div, t, _num(86400))
            shifted = _op(exp.Sub, days, _num(4))
            start = _op(exp.Sub, days, _fn("mod", _op(exp.Add, _op(exp.Mod, shifted,
                                                                     _num(7 * n)),
                                                        _num(7 * n)), _num(7 * n)))
            return T(_op(exp.Mul, start, _num(86400)), "Date")
        if unit == "HOUR":  # hours counted from midnight of the same day
            day = self._start_of_seconds(t, 86400)
            within = _op(exp.Mod, t, _num(86400))
            size = 3600 * n
            return T(_op(exp.Add, day, _op(exp.Sub, within, _op(exp.Mod, within,
                                                                 _num(size)))), "DateTime")
        return T(self._start_of_seconds(t, n * _UNIT_SECONDS[unit]), "DateTime")

    def _start_of(self, size: int) -> Callable[..., T]:
        def handler(call: Call, args: list[T], scope: Scope) -> T:
            t = self._time_arg(args, call).e
            return T(self._start_of_seconds(t, size), "DateTime")
        return handler

    def __getattr__(self, name: str) -> Any:
        sizes = {"_f_toStartOfMinute": 60, "_f_toStartOfFiveMinutes": 300,
                 "_f_toStartOfTenMinutes": 600, "_f_toStartOfFifteenMinutes": 900,
                 "_f_toStartOfHour": 3600, "_f_toStartOfDay": 86400}
        if name in sizes:
            return self._start_of(sizes[name])
        raise AttributeError(name)

    def _unixepoch(self, t: exp.Expression, *modifiers: str) -> exp.Expression:
        return _fn("unixepoch", t, _str("unixepoch"), *[_str(m) for m in modifiers])

    def _f_toStartOfMonth(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._unixepoch(self._time_arg(args, call).e, "start of month"), "Date")

    def _f_toStartOfYear(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._unixepoch(self._time_arg(args, call).e, "start of year"), "Date")

    def _f_toStartOfQuarter(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_fn("ae_start_of_months", self._time_arg(args, call).e, _num(3)), "Date")

    def _days(self, t: exp.Expression) -> exp.Expression:
        return _op(exp.Div, t, _num(86400))

    def _f_toStartOfWeek(self, call: Call, args: list[T], scope: Scope) -> T:
        # Analytics Engine documents weeks starting on Monday (ClickHouse mode 1).
        if len(call.args) > 1:
            mode = call.args[1]
            if not (isinstance(mode, exp.Literal) and mode.this in ("1", "3")):
                raise InvalidQuery("toStartOfWeek: weeks start on Monday (mode 1) here")
        days = self._days(self._time_arg(args, call).e)
        monday = _op(exp.Sub, days, _op(exp.Mod, _op(exp.Add, days, _num(3)), _num(7)))
        return T(_op(exp.Mul, monday, _num(86400)), "Date")

    def _f_toDayOfWeek(self, call: Call, args: list[T], scope: Scope) -> T:
        days = self._days(self._time_arg(args, call).e)  # 1970-01-01 was a Thursday
        return T(_op(exp.Add, _op(exp.Mod, _op(exp.Add, days, _num(3)), _num(7)), _num(1)),
                 "UInt8")

    def _f_toHour(self, call: Call, args: list[T], scope: Scope) -> T:
        t = self._time_arg(args, call).e
        return T(_op(exp.Div, _op(exp.Mod, t, _num(86400)), _num(3600)), "UInt8")

    def _f_toMinute(self, call: Call, args: list[T], scope: Scope) -> T:
        t = self._time_arg(args, call).e
        return T(_op(exp.Div, _op(exp.Mod, t, _num(3600)), _num(60)), "UInt8")

    def _f_toSecond(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_op(exp.Mod, self._time_arg(args, call).e, _num(60)), "UInt8")

    def _strftime_int(self, t: exp.Expression, fmt: str) -> exp.Expression:
        return _int_expr(_fn("strftime", _str(fmt), t, _str("unixepoch")))

    def _f_toYear(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._time_arg(args, call).e, "%Y"), "UInt16")

    def _f_toMonth(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._time_arg(args, call).e, "%m"), "UInt8")

    def _f_toDayOfMonth(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._time_arg(args, call).e, "%d"), "UInt8")

    def _f_toYYYYMM(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._time_arg(args, call).e, "%Y%m"), "UInt32")

    # numbers
    def _numeric(self, call: Call, args: list[T]) -> None:
        for a in args:
            if not (_is_num(a.t) or a.t == NULL_TYPE):
                raise InvalidQuery(f"{call.name} needs numbers, got {a.t}")

    def _f_intDiv(self, call: Call, args: list[T], scope: Scope) -> T:
        self._numeric(call, args)
        a, b = args
        if _is_int(a.t) and _is_int(b.t):
            return T(_op(exp.Div, a.e, b.e), a.t)  # SQLite truncates toward zero, too
        return T(_int_expr(_op(exp.Div, _cast(a.e, "REAL"), b.e)),
                 a.t if _is_int(a.t) else "Int64")

    def _f_log(self, call: Call, args: list[T], scope: Scope) -> T:
        self._numeric(call, args)
        return T(_fn("ln", args[0].e), "Float64")  # ClickHouse's log is the natural one

    _f_ln = _f_log

    def _f_pow(self, call: Call, args: list[T], scope: Scope) -> T:
        self._numeric(call, args)
        return T(_fn("pow", args[0].e, args[1].e), "Float64")

    def _f_round(self, call: Call, args: list[T], scope: Scope) -> T:
        self._numeric(call, args)
        digits = args[1].e if len(args) > 1 else _num(0)
        return T(_fn("ae_round", args[0].e, digits), args[0].t)

    def _f_floor(self, call: Call, args: list[T], scope: Scope) -> T:
        self._numeric(call, args)
        return T(_fn(call.name, args[0].e), args[0].t)

    _f_ceil = _f_floor

    def _f_toUInt8(self, call: Call, args: list[T], scope: Scope) -> T:
        bits = 8 if call.name == "toUInt8" else 32
        value = args[0]
        if _is_num(value.t) or _is_time(value.t):
            return T(_op(exp.BitwiseAnd, _int_expr(value.e), _num(2 ** bits - 1)),
                     f"UInt{bits}")
        return T(_fn("ae_to_uint", value.e, _num(bits)), f"UInt{bits}")

    _f_toUInt32 = _f_toUInt8

    # bits (integers as their ClickHouse width)
    def _width(self, t: str) -> int:
        if t in ("DateTime", "Date"):
            return 4
        if not _is_int(t):
            raise InvalidQuery(f"bit functions need integers, got {t}")
        return _INTS[t][0] // 8

    def _wider(self, a: str, b: str) -> str:
        (wa, sa), (wb, sb) = _INTS[a], _INTS[b]
        return _int_type(max(wa, wb), sa or sb)

    def _mask(self, e: exp.Expression, t: str) -> exp.Expression:
        width, signed = _INTS[t]
        if signed or width == 64:
            return e
        return _op(exp.BitwiseAnd, e, _num(2 ** width - 1))

    def _f_bitAnd(self, call: Call, args: list[T], scope: Scope) -> T:
        a, b = args
        self._width(a.t), self._width(b.t)
        t = self._wider(a.t, b.t)
        if call.name == "bitXor":
            return T(_fn("ae_bit_xor", a.e, b.e), t)
        cls = exp.BitwiseAnd if call.name == "bitAnd" else exp.BitwiseOr
        return T(_op(cls, a.e, b.e), t)

    _f_bitOr = _f_bitXor = _f_bitAnd

    def _f_bitNot(self, call: Call, args: list[T], scope: Scope) -> T:
        self._width(args[0].t)
        return T(self._mask(exp.BitwiseNot(this=_p(args[0].e)), args[0].t), args[0].t)

    def _f_bitShiftLeft(self, call: Call, args: list[T], scope: Scope) -> T:
        self._width(args[0].t)
        if call.name == "bitShiftLeft":
            return T(self._mask(_op(exp.BitwiseLeftShift, args[0].e, args[1].e), args[0].t),
                     args[0].t)
        return T(_op(exp.BitwiseRightShift, args[0].e, args[1].e), args[0].t)

    _f_bitShiftRight = _f_bitShiftLeft

    def _f_bitCount(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_fn("ae_bit_count", args[0].e, _num(self._width(args[0].t))), "UInt8")

    def _f_bitTest(self, call: Call, args: list[T], scope: Scope) -> T:
        self._width(args[0].t)
        return T(_op(exp.BitwiseAnd, _op(exp.BitwiseRightShift, args[0].e, args[1].e),
                     _num(1)), "UInt8")

    def _f_bitRotateLeft(self, call: Call, args: list[T], scope: Scope) -> T:
        left = 1 if call.name == "bitRotateLeft" else 0
        return T(_fn("ae_bit_rotate", args[0].e, args[1].e, _num(self._width(args[0].t)),
                     _num(left)), args[0].t)

    _f_bitRotateRight = _f_bitRotateLeft

    def _f_bitHammingDistance(self, call: Call, args: list[T], scope: Scope) -> T:
        width = max(self._width(args[0].t), self._width(args[1].t))
        return T(_fn("ae_bit_hamming", args[0].e, args[1].e, _num(width)), "UInt8")

    def _f_hex(self, call: Call, args: list[T], scope: Scope) -> T:
        value = args[0]
        is_float = value.t == "Float64"
        width = 8 if is_float or value.t in ("String", NULL_TYPE) else self._width(value.t)
        return T(_fn("ae_hex" if call.name == "hex" else "ae_bin", value.e, _num(width),
                     _num(int(is_float))), "String")

    _f_bin = _f_hex

    # strings
    def _string(self, call: Call, args: list[T], *indexes: int) -> None:
        for i in indexes or range(len(args)):
            if args[i].t not in ("String", NULL_TYPE):
                raise InvalidQuery(f"{call.name} needs a String, got {args[i].t}")

    def _f_length(self, call: Call, args: list[T], scope: Scope) -> T:
        self._string(call, args)
        return T(_fn("length", _cast(args[0].e, "BLOB")), "UInt64")  # bytes, as ClickHouse

    def _f_empty(self, call: Call, args: list[T], scope: Scope) -> T:
        self._string(call, args)
        return T(_op(exp.EQ, args[0].e, _str("")), "UInt8")

    def _f_lower(self, call: Call, args: list[T], scope: Scope) -> T:
        self._string(call, args)
        return T(_fn(call.name, args[0].e), "String")  # ASCII only, in both

    _f_upper = _f_lower

    def _f_lowerUTF8(self, call: Call, args: list[T], scope: Scope) -> T:
        self._string(call, args)
        fn = "ae_lower_utf8" if call.name == "lowerUTF8" else "ae_upper_utf8"
        return T(_fn(fn, args[0].e), "String")

    _f_upperUTF8 = _f_lowerUTF8

    def _f_startsWith(self, call: Call, args: list[T], scope: Scope) -> T:
        self._string(call, args)
        s, prefix = args[0].e, args[1].e
        return T(_op(exp.EQ, _fn("substr", s, _num(1), _fn("length", prefix)), prefix),
                 "UInt8")

    def _f_endsWith(self, call: Call, args: list[T], scope: Scope) -> T:
        self._string(call, args)
        return T(_fn("ae_ends_with", args[0].e, args[1].e), "UInt8")

    def _f_position(self, call: Call, args: list[T], scope: Scope) -> T:
        self._string(call, args)
        return T(_fn("instr", _cast(args[0].e, "BLOB"), _cast(args[1].e, "BLOB")), "UInt64")

    def _f_substring(self, call: Call, args: list[T], scope: Scope) -> T:
        self._string(call, args, 0)
        fn = "ae_substring" if len(args) == 3 else "ae_substring2"
        return T(_fn(fn, *[a.e for a in args]), "String")

    def _f_format(self, call: Call, args: list[T], scope: Scope) -> T:
        self._string(call, args, 0)
        return T(_fn("ae_format", args[0].e, *[self._to_string(a) for a in args[1:]]),
                 "String")

    def _to_string(self, value: T) -> exp.Expression:
        """toString as ClickHouse prints a value of that type."""
        if value.t == "DateTime":
            return _fn("ae_datetime_str", value.e)
        if value.t == "Date":
            return _fn("ae_date_str", value.e)
        if value.t == "Float64":
            return _fn("ae_float_str", value.e)
        if value.t == "Bool":
            return _fn("IIF", value.e, _str("true"), _str("false"))
        return value.e


# -- results -------------------------------------------------------------------------------------------

def _converter(t: str) -> Callable[[Any], Any]:
    if _is_int(t) and t != "Bool":
        return lambda v: None if v is None else int(v)
    if t == "Bool":
        return lambda v: None if v is None else bool(v)
    if t == "Float64":
        return lambda v: None if v is None else float(v)
    if t == "DateTime":
        return lambda v: None if v is None else F.render_datetime(v)
    if t == "Date":
        return lambda v: None if v is None else F.render_date(v)
    if t.startswith("Array("):
        inner = _converter(t[6:-1])
        return lambda v: None if v is None else [inner(x) for x in json.loads(v)]
    if t == NULL_TYPE:
        return lambda v: None
    return lambda v: v


def compile_select(sql: str, params: Sequence[Any] = (), *,
                   dataset: str = "hoox_telemetry") -> Compiled:
    """The SQLite text (with :now and :today parameters) and meta of one query."""
    parsed = parse(sql, params)
    if parsed.kind != "select":
        return _show(parsed.kind, dataset)
    assert parsed.tree is not None
    tree, columns = Translator(dataset).select(parsed.tree)
    return Compiled(tree.sql(dialect="sqlite"),
                    [{"name": n, "type": t} for n, t in columns])


def _show(kind: str, dataset: str) -> Compiled:
    if kind == "show_tables":
        return Compiled(None, [{"name": "dataset", "type": "String"}], [{"dataset": dataset}])
    if kind == "show_timezone":
        return Compiled(None, [{"name": "timezone", "type": "String"}], [{"timezone": "UTC"}])
    zones = sorted(zoneinfo.available_timezones() | {"UTC"})
    return Compiled(None, [{"name": "name", "type": "String"}], [{"name": z} for z in zones])


# -- ClickHouse text for Cloudflare ----------------------------------------------------------------

def to_clickhouse(sql: str, params: Sequence[Any] = (), *, dataset: str = "hoox_telemetry",
                  now: float | None = None, portable: bool = False,
                  format: str | None = "JSON") -> str:
    """Validate against the same allow-list, bind params as literals the generator writes
    (never string pasting), and return the text for Cloudflare's SQL API.

    `format` replaces any FORMAT clause (the API answers JSON with FORMAT JSON; None drops
    it). `now` pins now()/today() to a fixed Unix time. `portable` rewrites the two places
    where Analytics Engine differs from stock ClickHouse (quantileWeighted, Monday weeks),
    for running the same query on ClickHouse itself (the conformance suite's chdb)."""
    parsed = parse(sql, params)
    if parsed.kind != "select":
        words = {"show_tables": "TABLES", "show_timezones": "TIMEZONES",
                 "show_timezone": "TIMEZONE"}[parsed.kind]
        return f"SHOW {words}" + (f" FORMAT {format}" if format else "")
    assert parsed.tree is not None
    Translator(dataset).select(parsed.tree.copy())  # resolves tables and columns, or raises
    tree = parsed.tree.transform(lambda n: _clickhouse_node(n, now, portable))
    tree.set("format", None)
    limit = tree.args.get("limit")
    if limit is not None and isinstance(limit.expression, exp.Column):
        tree.set("limit", None)  # LIMIT ALL: no limit
    text = tree.sql(dialect="clickhouse")
    return text + (f" FORMAT {format}" if format else "")


def _clickhouse_node(node: exp.Expression, now: float | None, portable: bool) -> exp.Expression:
    if isinstance(node, exp.Func) and not isinstance(node, (exp.Anonymous, *ALLOWED_NODES)):
        call = _call(node)
        # sqlglot writes `if` as CASE WHEN and toStartOfMonth as dateTrunc: spell the
        # documented names out.
        if isinstance(node, (exp.If, exp.TimestampTrunc, exp.TimeToStr, exp.Substring,
                             exp.StrPosition, exp.Format, exp.Hex, exp.Floor, exp.Ceil,
                             exp.Length)):
            return exp.Anonymous(this=call.name, expressions=call.args)
    if isinstance(node, exp.Anonymous):
        name = node.name
        if now is not None and name == "now":
            return _fn("toDateTime", _num(int(now)))
        if now is not None and name == "today":
            return _fn("toDate", _fn("toDateTime", _num(int(now))))
        if portable and name == "quantileWeighted":
            args = list(node.expressions)
            return exp.ParameterizedAgg(this="quantileExactWeighted", expressions=args[:1],
                                        params=args[1:])
        if portable and name == "toStartOfWeek" and len(node.expressions) == 1:
            return _fn("toStartOfWeek", node.expressions[0], _num(1))
    return node


# -- the engine ------------------------------------------------------------------------------------------

class LocalEngine:
    """Answers Analytics Engine SQL from the SQLite event log, read-only."""

    CACHE_SIZE = 256
    PROGRESS_OPS = 4000  # VM instructions between two looks at the clock

    def __init__(self, db_path: str, *, dataset: str = "hoox_telemetry",
                 timeout_ms: int = 5000, max_rows: int = 10000,
                 now: Callable[[], float] = time.time):
        self.db_path = str(db_path)
        self.dataset = dataset
        self.timeout_ms = timeout_ms
        self.max_rows = max_rows
        self.now = now
        self._conn: sqlite3.Connection | None = None
        self._cache: OrderedDict[tuple, Compiled] = OrderedDict()
        self._lock = threading.Lock()         # the connection
        self._cache_lock = threading.Lock()   # the translation cache
        self._allowed_functions = F.allowed_functions()

    # connection ---------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            uri = f"file:{urllib.parse.quote(self.db_path)}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA query_only = ON")
            conn.execute("PRAGMA case_sensitive_like = ON")  # ClickHouse's LIKE is
            F.register(conn)
            conn.set_authorizer(self._authorize)
            self._conn = conn
        return self._conn

    def _authorize(self, action: int, arg1: str | None, arg2: str | None,
                   db: str | None, source: str | None) -> int:
        if action == sqlite3.SQLITE_SELECT:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            # the view, and the columns of the table behind it that the view shows
            # (never `payload`); '' is a read without a column, as count(*) does
            allowed = arg1 == SOURCE_VIEW or (arg1 == SOURCE_TABLE
                                              and (arg2 or "") in SOURCE_TABLE_COLUMNS)
            return sqlite3.SQLITE_OK if allowed and db in ("main", None) \
                else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            return sqlite3.SQLITE_OK if (arg2 or "").lower() in self._allowed_functions \
                else sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_DENY

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # queries --------------------------------------------------------------------------------

    def compile(self, sql: str, params: Sequence[Any] = ()) -> Compiled:
        key = (sql, tuple((type(p).__name__, p) for p in (params or ())))
        try:
            hash(key)
        except TypeError:  # an unhashable param: parse() rejects it
            return compile_select(sql, params, dataset=self.dataset)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        compiled = compile_select(sql, params, dataset=self.dataset)
        with self._cache_lock:
            self._cache[key] = compiled
            if len(self._cache) > self.CACHE_SIZE:
                self._cache.popitem(last=False)
        return compiled

    def sqlite_sql(self, sql: str, params: Sequence[Any] = ()) -> str | None:
        return self.compile(sql, params).sql

    def plan(self, sql: str, params: Sequence[Any] = ()) -> list[str]:
        """EXPLAIN QUERY PLAN of the translation (for tests and tuning)."""
        compiled = self.compile(sql, params)
        with self._lock:
            conn = self._connection()
            conn.set_authorizer(None)
            try:
                rows = conn.execute("EXPLAIN QUERY PLAN " + (compiled.sql or ""),
                                    self._clock()).fetchall()
            finally:
                conn.set_authorizer(self._authorize)
        return [r[3] for r in rows]

    def _clock(self) -> dict[str, int]:
        now = int(self.now())
        return {"now": now, "today": now - now % 86400}

    def query(self, sql: str, params: Sequence[Any] = ()) -> QueryResult:
        compiled = self.compile(sql, params)
        if compiled.sql is None:
            return QueryResult(list(compiled.meta), list(compiled.static_rows or []))
        converters = [(m["name"], _converter(m["type"])) for m in compiled.meta]
        with self._lock:
            conn = self._connection()
            deadline = time.monotonic() + self.timeout_ms / 1000
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline),
                                      self.PROGRESS_OPS)
            try:
                cursor = conn.execute(compiled.sql, self._clock())
                raw = cursor.fetchmany(self.max_rows + 1)
                cursor.close()
            except sqlite3.OperationalError as e:
                raise self._translate(e) from None
            except sqlite3.DatabaseError as e:
                raise self._translate(e) from None
            finally:
                conn.set_progress_handler(None, 0)
        truncated = len(raw) > self.max_rows
        rows = [{name: conv(value) for (name, conv), value in zip(converters, row)}
                for row in raw[:self.max_rows]]
        return QueryResult(list(compiled.meta), rows, truncated)

    def _translate(self, error: sqlite3.Error) -> Exception:
        code = getattr(error, "sqlite_errorcode", 0) & 0xFF
        if code == sqlite3.SQLITE_INTERRUPT:
            return QueryTimeout(
                f"The query was stopped after the local time limit of {self.timeout_ms} ms; "
                "narrow the time range, or raise ANALYTICS_QUERY_TIMEOUT_MS")
        if code in (sqlite3.SQLITE_ERROR, sqlite3.SQLITE_AUTH, sqlite3.SQLITE_MISMATCH,
                    sqlite3.SQLITE_RANGE, sqlite3.SQLITE_TOOBIG, sqlite3.SQLITE_CONSTRAINT):
            text = str(error)
            if "user-defined function raised exception" in text:
                text = "a function could not convert its argument"
            return InvalidQuery(text)
        return error  # storage trouble (locked, I/O, missing file): the caller's 503
