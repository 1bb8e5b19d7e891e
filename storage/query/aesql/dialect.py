"""The allow-list: the statements, clauses and functions Analytics Engine documents,
and the check that a parsed tree holds nothing else."""

from __future__ import annotations

from typing import NamedTuple

from sqlglot import exp

from .errors import InvalidQuery, ParamsMismatch

FORMATS = ("JSON", "JSONEachRow", "TabSeparated")  # all answered as JSON over HTTP

# The allow-list of the parsed tree: every syntax node type the translator handles
# (translate.py), each with the arg keys it reads. A node of any other type, or a node
# of these holding any other arg, is refused by name: LIMIT 1 BY x is a Limit with
# `expressions`, WITH TOTALS a Group with `totals`, and neither may be dropped. Types
# match exactly (a subclass is another construct), so whatever a new sqlglot version
# parses into a new node or arg is refused until the translator handles it.
_BINARY = frozenset({"this", "expression"})
NODES: dict[type, frozenset[str]] = {
    exp.Select: frozenset({"expressions", "from_", "where", "group", "having", "order",
                           "limit", "offset", "format"}),
    exp.From: frozenset({"this"}),
    exp.Table: frozenset({"this", "alias", "db", "catalog"}),  # db: "unknown table"
    exp.Subquery: frozenset({"this", "alias"}),
    exp.TableAlias: frozenset({"this"}),
    exp.Identifier: frozenset({"this", "quoted"}),
    exp.Column: frozenset({"this", "table"}),
    exp.Star: frozenset(),
    exp.Alias: frozenset({"this", "alias"}),
    exp.Literal: frozenset({"this", "is_string"}),
    exp.Null: frozenset(),
    exp.Boolean: frozenset({"this"}),
    exp.Paren: frozenset({"this"}),
    exp.Neg: frozenset({"this"}),
    exp.Not: frozenset({"this"}),
    **{op: _BINARY for op in (exp.And, exp.Or, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod,
                              exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE)},
    exp.In: frozenset({"this", "expressions"}),
    exp.Between: frozenset({"this", "low", "high"}),
    exp.Like: frozenset({"this", "expression", "negate"}),
    exp.ILike: frozenset({"this", "expression", "negate"}),
    exp.Interval: frozenset({"this", "unit"}),
    exp.Var: frozenset({"this"}),
    exp.Where: frozenset({"this"}),
    exp.Group: frozenset({"expressions"}),
    exp.Having: frozenset({"this"}),
    exp.Order: frozenset({"expressions"}),
    exp.Ordered: frozenset({"this", "desc", "nulls_first"}),
    exp.Limit: frozenset({"expression"}),
    exp.Offset: frozenset({"expression"}),
    exp.Distinct: frozenset({"expressions"}),  # count(DISTINCT x); SELECT DISTINCT is not
    exp.Extract: frozenset({"this", "expression"}),
    exp.Is: frozenset({"this", "expression"}),  # IS [NOT] NULL only (translate.py)
}
ALLOWED_NODES: tuple[type, ...] = tuple(NODES)
# Function nodes: every argument that is an expression is an argument of the call (the
# arity check sees it); other args are flags, and only these carry no meaning here.
_FUNCTION_FLAGS: dict[type, frozenset[str]] = {
    exp.Count: frozenset({"big_int"}),   # sqlglot's mark of COUNT, not COUNT_BIG
    exp.Length: frozenset({"binary"}),   # length is by code point in Analytics Engine
}
_NAMED_FUNCTIONS = (exp.Anonymous, exp.AnonymousAggFunc, exp.CombinedAggFunc,
                    exp.ParameterizedAgg)  # their `this` is the name

# What a refusal calls a node type or an arg of a node, in SQL words; other nodes are
# named by their type and text.
REJECTED_NODES: dict[type, str] = {
    exp.Join: "JOIN is not supported: a query reads one table",
    exp.Union: "UNION is not supported: a query reads one table",
    exp.Intersect: "INTERSECT is not supported", exp.Except: "EXCEPT is not supported",
    exp.With: "WITH (common table expressions) is not supported",
    exp.CTE: "WITH (common table expressions) is not supported",
    exp.Case: "CASE WHEN is not supported; use if(cond, then, else)",
    exp.Window: "window functions (OVER) are not supported",
    exp.Lateral: "ARRAY JOIN / LATERAL is not supported",
    exp.Final: "FINAL is not supported",
    exp.TableSample: "SAMPLE is not supported",
    exp.GroupingSets: "GROUPING SETS is not supported",
    exp.Rollup: "ROLLUP is not supported", exp.Cube: "CUBE is not supported",
    exp.Fetch: "FETCH is not supported; use LIMIT",
    exp.Collate: "COLLATE is not supported",
    exp.Escape: "LIKE ... ESCAPE is not supported; LIKE escapes with a backslash",
    exp.Array: "array literals are not supported",
    exp.Tuple: "tuples are not supported",
}
_REJECTED_ARGS: dict[tuple[type, str], str] = {
    (exp.Select, "distinct"): "SELECT DISTINCT is not supported; use GROUP BY",
    (exp.Select, "joins"): "JOIN is not supported: a query reads one table",
    (exp.Select, "laterals"): "ARRAY JOIN / LATERAL is not supported",
    (exp.Select, "with_"): "WITH (common table expressions) is not supported",
    (exp.Select, "prewhere"): "PREWHERE is not supported; use WHERE",
    (exp.Select, "settings"): "SETTINGS is not supported",
    (exp.Select, "qualify"): "QUALIFY is not supported",
    (exp.Select, "windows"): "WINDOW is not supported",
    (exp.Select, "sample"): "SAMPLE is not supported",
    (exp.Limit, "expressions"): "LIMIT ... BY is not supported",
    (exp.Limit, "limit_options"): "LIMIT ... WITH TIES is not supported",
    (exp.Limit, "offset"): "LIMIT offset, n is not supported; use LIMIT n OFFSET offset",
    (exp.Group, "totals"): "GROUP BY ... WITH TOTALS is not supported",
    (exp.Group, "rollup"): "GROUP BY ... WITH ROLLUP is not supported",
    (exp.Group, "cube"): "GROUP BY ... WITH CUBE is not supported",
    (exp.Group, "grouping_sets"): "GROUPING SETS is not supported",
    (exp.Group, "all"): "GROUP BY ALL is not supported; name the columns",
    (exp.Ordered, "with_fill"): "ORDER BY ... WITH FILL is not supported",
    (exp.Star, "except_"): "SELECT * EXCEPT is not supported",
    (exp.Star, "replace"): "SELECT * REPLACE is not supported",
    (exp.Star, "rename"): "SELECT * RENAME is not supported",
    (exp.In, "is_global"): "GLOBAL IN is not supported",
    (exp.In, "query"): "IN (subquery) is not supported: IN takes a list of values",
    (exp.In, "unnest"): "IN UNNEST is not supported: IN takes a list of values",
    (exp.In, "field"): "IN takes a list of values",
    (exp.Between, "symmetric"): "BETWEEN SYMMETRIC is not supported",
    (exp.Like, "escape"): "LIKE ... ESCAPE is not supported; LIKE escapes with a backslash",
    (exp.TableAlias, "columns"): "column names in a table alias are not supported",
    (exp.Table, "sample"): "SAMPLE is not supported",
    (exp.Table, "final"): "FINAL is not supported",
    (exp.Table, "joins"): "JOIN is not supported: a query reads one table",
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
    "format": ("scalar", 2, 64), "toUInt8": ("scalar", 1, 1), "toUInt32": ("scalar", 1, 1),
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


def is_documented(name: str) -> bool:
    """Whether `name` (in any case) is a function of the reference or one of its aliases."""
    return name.lower() in _SPELLINGS or name.lower() in _CASE_INSENSITIVE


def _check(tree: exp.Expression) -> None:
    """Every node of the tree, and every arg of each, is on the allow-list."""
    for node in tree.walk():
        allowed = NODES.get(type(node))
        if allowed is not None:
            _check_args(node, allowed)
            if isinstance(node, exp.Select):
                _check_format(node)
            continue
        if isinstance(node, exp.Placeholder):
            raise ParamsMismatch("A ? placeholder has no value in params")
        if type(node) in REJECTED_NODES:
            raise InvalidQuery(REJECTED_NODES[type(node)])
        if isinstance(node, exp.Func):
            _call(node)  # raises on anything not documented
            _check_flags(node)
            continue
        raise InvalidQuery(f"{_node_label(node)} is not supported in Analytics Engine SQL")


def _present(value: object) -> bool:
    return value is not None and value is not False and value != []


def _check_args(node: exp.Expression, allowed: frozenset[str]) -> None:
    for key, value in node.args.items():
        if key in allowed or not _present(value):
            continue
        if key == "joins" and isinstance(value, list) and any(
                isinstance(j, exp.Join) and j.text("kind").upper() == "ARRAY" for j in value):
            raise InvalidQuery("ARRAY JOIN is not supported")
        label = _REJECTED_ARGS.get((type(node), key))
        if label is None:  # a clause met for the first time: named by its arg and node
            label = (f"the {key.upper().rstrip('_')} clause of "
                     f"{type(node).__name__.upper()} is not supported")
        raise InvalidQuery(label)


def _check_flags(node: exp.Func) -> None:
    """A function node's args that are not expressions (not counted by the arity check)
    must be flags that change nothing."""
    flags = _FUNCTION_FLAGS.get(type(node), frozenset())
    for key, value in node.args.items():
        if isinstance(value, exp.Expression) or key in flags or not _present(value):
            continue
        if isinstance(value, list) and all(isinstance(v, exp.Expression) for v in value):
            continue
        if key == "this" and isinstance(node, _NAMED_FUNCTIONS):
            continue
        raise InvalidQuery(f"function {_display_name(node)}: its {key} form is not "
                           "supported")


def _check_format(node: exp.Select) -> None:
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

