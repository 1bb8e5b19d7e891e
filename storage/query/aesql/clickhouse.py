"""The ClickHouse text sent to Cloudflare's SQL API: the same checked tree, with params
bound as literals the generator writes and every function spelled as Analytics Engine
documents it."""

from __future__ import annotations

from typing import Any, Sequence

from sqlglot import exp

from .build import _fn, _num
from .dialect import ALLOWED_NODES, _call
from .limits import compiling
from .parse import parse
from .translate import Translator

# -- ClickHouse text for Cloudflare ----------------------------------------------------------------

def to_clickhouse(sql: str, params: Sequence[Any] = (), *, dataset: str = "hoox_telemetry",
                  now: float | None = None, portable: bool = False,
                  format: str | None = "JSON") -> str:
    """Validate against the same allow-list, bind params as literals the generator writes
    (never string pasting), and return the text for Cloudflare's SQL API.

    `format` replaces any FORMAT clause (the API answers JSON with FORMAT JSON; None drops
    it). `now` pins now()/today() to a fixed Unix time. `portable` rewrites the places
    where Analytics Engine differs from stock ClickHouse (quantileWeighted, Monday weeks,
    `length` and `substring` by code point), for running the same query on ClickHouse
    itself (the conformance suite's chdb)."""
    return translate(sql, params, dataset=dataset, now=now, portable=portable,
                     format=format)[0]


def translate(sql: str, params: Sequence[Any] = (), *, dataset: str = "hoox_telemetry",
              now: float | None = None, portable: bool = False,
              format: str | None = "JSON") -> tuple[str, str | None]:
    """`to_clickhouse`'s text, and the FORMAT the query itself asked for (None: none)."""
    with compiling():
        return _translate(sql, params, dataset, now, portable, format)


def _translate(sql: str, params: Sequence[Any], dataset: str, now: float | None,
               portable: bool, format: str | None) -> tuple[str, str | None]:
    parsed = parse(sql, params)
    if parsed.kind != "select":
        words = {"show_tables": "TABLES", "show_timezones": "TIMEZONES",
                 "show_timezone": "TIMEZONE"}[parsed.kind]
        return f"SHOW {words}" + (f" FORMAT {format}" if format else ""), parsed.format
    assert parsed.tree is not None
    Translator(dataset).select(parsed.tree.copy())  # resolves tables and columns, or raises
    tree = parsed.tree.copy()
    _rewrite(tree, now, portable)
    tree.set("format", None)
    limit = tree.args.get("limit")
    if limit is not None and isinstance(limit.expression, exp.Column):
        tree.set("limit", None)  # LIMIT ALL: no limit
    text = tree.sql(dialect="clickhouse")
    return text + (f" FORMAT {format}" if format else ""), parsed.format


# Where an Analytics Engine function is another function in stock ClickHouse.
_PORTABLE_NAMES = {"length": "lengthUTF8", "substring": "substringUTF8",
                   "lowerUTF8": "lowerUTF8", "upperUTF8": "upperUTF8"}
# Typed nodes sqlglot would print under another name or shape (`if` as CASE WHEN,
# toStartOfMonth as dateTrunc): written out as the documented call.
_RESPELLED = (exp.If, exp.TimestampTrunc, exp.TimeToStr, exp.Substring, exp.StrPosition,
              exp.Format, exp.Hex, exp.Floor, exp.Ceil, exp.Length, exp.Lower, exp.Upper,
              exp.DayOfWeekIso, exp.Pow, exp.Ln, exp.StartsWith, exp.EndsWith,
              exp.ArgMax, exp.ArgMin, exp.FirstValue, exp.LastValue, exp.CountIf)


def _rewrite(root: exp.Expression, now: float | None, portable: bool) -> None:
    """Children first, so that a call nested in another (if within if) is rewritten too;
    without recursion (a chain of thousands of ORs is that deep)."""
    order, stack = [], [root]
    while stack:  # parents before their children...
        node = stack.pop()
        order.append(node)
        stack.extend(node.iter_expressions())
    for node in reversed(order):  # ...so children before their parents
        new = _clickhouse_node(node, now, portable)
        if new is not node:
            node.replace(new)


def _clickhouse_node(node: exp.Expression, now: float | None, portable: bool) -> exp.Expression:
    if not isinstance(node, (exp.Anonymous, *_RESPELLED)) or isinstance(node, ALLOWED_NODES):
        return node
    call = _call(node)
    name, args = call.name, call.args
    if now is not None and name == "now":
        return _fn("toDateTime", _num(int(now)))
    if now is not None and name == "today":
        return _fn("toDate", _fn("toDateTime", _num(int(now))))
    if portable and name == "quantileWeighted":
        return exp.ParameterizedAgg(this="quantileExactWeighted", expressions=args[:1],
                                    params=args[1:])
    if portable and name == "toStartOfWeek" and len(args) == 1:
        return _fn("toStartOfWeek", args[0], _num(1))
    if portable:
        name = _PORTABLE_NAMES.get(name, name)
    return exp.Anonymous(this=name, expressions=args)
