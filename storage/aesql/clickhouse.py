"""The ClickHouse text sent to Cloudflare's SQL API: the same checked tree, with params
bound as literals the generator writes and every function spelled as Analytics Engine
documents it."""

from __future__ import annotations

from typing import Any, Sequence

from sqlglot import exp

from .build import _fn, _num
from .dialect import ALLOWED_NODES, _call
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
    parsed = parse(sql, params)
    if parsed.kind != "select":
        words = {"show_tables": "TABLES", "show_timezones": "TIMEZONES",
                 "show_timezone": "TIMEZONE"}[parsed.kind]
        return f"SHOW {words}" + (f" FORMAT {format}" if format else ""), parsed.format
    assert parsed.tree is not None
    Translator(dataset).select(parsed.tree.copy())  # resolves tables and columns, or raises
    tree = parsed.tree.transform(lambda n: _clickhouse_node(n, now, portable))
    tree.set("format", None)
    limit = tree.args.get("limit")
    if limit is not None and isinstance(limit.expression, exp.Column):
        tree.set("limit", None)  # LIMIT ALL: no limit
    text = tree.sql(dialect="clickhouse")
    return text + (f" FORMAT {format}" if format else ""), parsed.format


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

