"""The allow-list: the statements, clauses and functions Analytics Engine documents,
and the check that a parsed tree holds nothing else."""

from __future__ import annotations

from typing import NamedTuple

from sqlglot import exp

from .errors import InvalidQuery, ParamsMismatch

FORMATS = ("JSON", "JSONEachRow", "TabSeparated")  # all answered as JSON over HTTP

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
    "toStartOfYear": ("scalar", 1, 2), "toStartOfQuarter": ("scalar", 1, 2),
    "toStartOfMonth": ("scalar", 1, 2), "toStartOfWeek": ("scalar", 1, 3),
    "toStartOfDay": ("scalar", 1, 2), "toStartOfHour": ("scalar", 1, 2),
    "toStartOfFifteenMinutes": ("scalar", 1, 2), "toStartOfTenMinutes": ("scalar", 1, 2),
    "toStartOfFiveMinutes": ("scalar", 1, 2), "toStartOfMinute": ("scalar", 1, 2),
    "toYear": ("scalar", 1, 2), "toMonth": ("scalar", 1, 2),
    "toDayOfMonth": ("scalar", 1, 2), "toDayOfWeek": ("scalar", 1, 1),
    "toHour": ("scalar", 1, 2), "toMinute": ("scalar", 1, 2), "toSecond": ("scalar", 1, 2),
    "toYYYYMM": ("scalar", 1, 2), "intDiv": ("scalar", 2, 2),
    "log": ("scalar", 1, 1), "ln": ("scalar", 1, 1), "pow": ("scalar", 2, 2),
    "round": ("scalar", 1, 2), "floor": ("scalar", 1, 2), "ceil": ("scalar", 1, 2),
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
# The names ClickHouse registers case-insensitively (checked one by one against chdb):
# COUNT(), SUM(x), NOW() are accepted; TOYEAR(t) is not.
_CASE_INSENSITIVE = {n.lower(): n for n in (
    "count", "sum", "avg", "min", "max", "first_value", "last_value", "if", "now", "today",
    "log", "ln", "pow", "power", "round", "floor", "ceil", "length", "lower", "upper",
    "position", "substring", "substr", "hex", "bin")}
# Other names for documented functions: ClickHouse's own, and the reference's
# backward-compatibility aliases (toLower/toUpper are lowerUTF8/upperUTF8 there).
_ALIASES = {"power": "pow", "substr": "substring", "toLower": "lowerUTF8",
            "toUpper": "upperUTF8", "isEmpty": "empty"}

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
        if unit not in _TRUNC_NAMES:
            raise InvalidQuery(f"function {_display_name(node)} is not supported")
        zone = node.args.get("zone")
        name, args = _TRUNC_NAMES[unit], [node.this] + ([zone] if zone is not None else [])
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
        name = _ALIASES.get(_CASE_INSENSITIVE.get(name.lower(), name),
                            _CASE_INSENSITIVE.get(name.lower(), name))
        if name not in FUNCTIONS:
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


# Every spelling of a documented function, by its lower case.
_SPELLINGS: dict[str, str] = {n.lower(): n for n in (*FUNCTIONS, *_ALIASES)}


def check_spelling(name: str) -> None:
    """A documented function spelled in another case is refused, as ClickHouse refuses
    it, unless ClickHouse registers the name case-insensitively (`COUNT()`, `NOW()`).
    sqlglot's typed nodes forget the spelling, so the parser checks it on the tokens."""
    canonical = _SPELLINGS.get(name.lower())
    if canonical is None or name == canonical or name.lower() in _CASE_INSENSITIVE:
        return
    raise InvalidQuery(f"unknown function {name}; function names are case-sensitive "
                       f"(did you mean {canonical}?)")


def _check(tree: exp.Expression) -> None:
    """Every node of the tree is on the allow-list (an unknown node is an error)."""
    for node in tree.walk():
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

