"""The column names ClickHouse gives unaliased select expressions."""

from __future__ import annotations

import math

from sqlglot import exp

from .dialect import _EXTRACT, _call

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
        if not math.isfinite(value):  # refused when translated: past Float64's range
            return text
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

