"""The translation of a checked Analytics Engine SELECT into SQLite: statements, scopes,
operators and literals here; the functions in `functions/`, one family a module."""

from __future__ import annotations

import math

from dataclasses import dataclass, field

from sqlglot import exp

from ...log.points import TABLE as POINTS_TABLE
from . import udf as F
from .build import _cast, _fn, _infinity, _num, _op, _p, _str
from .dialect import _EXTRACT, _UNIT_MONTHS, _UNIT_SECONDS, Call, _call, _node_label
from .errors import InvalidQuery
from .limits import Budget
from .functions import (AggregateFunctions, BitFunctions, NumberFunctions, StringFunctions,
                        TimeFunctions)
from .names import _OP_NAMES, ch_name
from .types import (_INTS, AE_COLUMNS, NULL_TYPE, T, _arith_type, _int_type, _is_int, _is_num,
                    _is_time, _literal_int_type, supertype, zone_of)

SOURCE_VIEW = "datapoints"   # storage/log/schema.py: the data point columns over `events`


def points_source(dataset: str) -> exp.Subquery:
    """One dataset of the raw points table as Analytics Engine shows a dataset (`dataset`
    itself is a literal of the translation). SQLite flattens it into the query, so a time
    range is a range of the (dataset, received_ms / 1000) index."""
    columns = [exp.Alias(this=_op(exp.Div, exp.column("received_ms"), _num(1000)),
                         alias=exp.to_identifier("timestamp")),
               exp.Alias(this=_num(1), alias=exp.to_identifier("_sample_interval")),
               exp.column("index1"),
               *(exp.column(f"blob{i}") for i in range(1, 21)),
               *(exp.column(f"double{i}") for i in range(1, 21))]
    select = exp.Select(expressions=columns)
    select.set("from_", exp.From(this=exp.Table(this=exp.to_identifier(POINTS_TABLE))))
    select.set("where", exp.Where(this=exp.EQ(this=exp.column("dataset"),
                                               expression=_str(dataset))))
    return exp.Subquery(this=select)


@dataclass
class Scope:
    """Names visible in one SELECT: its source's columns and its own aliases."""
    columns: dict[str, T]
    aliases: dict[str, exp.Expression] = field(default_factory=dict)
    resolving: set[str] = field(default_factory=set)
    qualifiers: set[str] = field(default_factory=set)
    nullable: set[str] = field(default_factory=set)  # a subquery's columns that can be NULL
    # whether each alias can be NULL, once worked out (aliases built on aliases would
    # otherwise be walked once per use)
    null_aliases: dict[str, bool] = field(default_factory=dict)


def _is_aggregate(node: exp.Expression) -> bool:
    return isinstance(node, exp.AggFunc) or (isinstance(node, exp.Anonymous)
                                             and node.name.lower() in F.AGGREGATES)


def _check_grouping(result: exp.Select, budget: Budget) -> None:
    """In a query that aggregates, every column outside an aggregate must be a GROUP BY
    key or inside one: ClickHouse refuses the rest (NOT_AN_AGGREGATE), where SQLite would
    answer them from an arbitrary row of the group. Checked on the translation, where
    aliases and GROUP BY positions are already the expressions they name."""
    group = result.args.get("group")
    having = result.args.get("having")
    order = result.args.get("order")
    parts = [a.this for a in result.expressions] + ([having.this] if having else []) + \
        ([o.this for o in order.expressions] if order else [])
    if group is None and not any(_is_aggregate(n) for p in parts for n in p.walk()):
        return
    # Keys compare by sqlglot's structural hash, which each node keeps once worked out
    # (column names and strings keep their case): the walk hashes each node once, where
    # writing every level out as text costs the square of a deep expression's size.
    keys: set[exp.Expression] = set()
    for key in group.expressions if group else []:
        if (isinstance(key, exp.Literal) and not key.is_string and key.this.isdigit()
                and 0 < int(key.this[:12]) <= len(result.expressions)):
            key = result.expressions[int(key.this) - 1].this  # GROUP BY 2: a position
        keys.add(key)
    for part in parts:
        column = _ungrouped(part, keys, budget)
        if column is not None:
            raise InvalidQuery(f"{column} is not under an aggregate function and not in "
                               "GROUP BY keys")


def _ungrouped(node: exp.Expression, keys: set[exp.Expression],
               budget: Budget) -> str | None:
    """The first column of `node` that is neither a GROUP BY key nor inside one or inside
    an aggregate."""
    budget.check_clock()
    if node in keys or _is_aggregate(node):
        return None
    if isinstance(node, exp.Column):
        return node.name
    for child in node.iter_expressions():
        column = _ungrouped(child, keys, budget)
        if column is not None:
            return column
    return None


def _if_chain(cond: exp.Expression, then: exp.Expression,
              other: exp.Expression) -> exp.Expression:
    """if(cond, then, other) as one flat CASE with the CASE of a nested if: SQLite's
    parser takes 18 levels of nested IIF, ClickHouse hundreds. A nested if in the else
    branch adds its WHENs after this one; in the then branch, this one is turned round
    (WHEN cond IS NOT TRUE THEN other) and its WHENs follow. Only CASEs made here occur
    in a translation (the dialect refuses CASE WHEN)."""
    if isinstance(other, exp.Case):
        whens = [exp.If(this=cond, true=then), *other.args["ifs"]]
        default = other.args.get("default")
    elif isinstance(then, exp.Case):
        refused = exp.Not(this=exp.Is(this=_p(cond), expression=exp.true()))
        whens = [exp.If(this=exp.Paren(this=refused), true=other), *then.args["ifs"]]
        default = then.args.get("default")
    else:
        whens, default = [exp.If(this=cond, true=then)], other
    return exp.Case(ifs=whens, default=default)


class Translator(AggregateFunctions, TimeFunctions, NumberFunctions, BitFunctions,
                 StringFunctions):
    """Rewrites a checked Analytics Engine SELECT into SQLite."""

    def __init__(self, dataset: str, points: tuple[str, ...] = (),
                 budget: Budget | None = None):
        """`points`: the datasets of raw points the log holds, each a table too; the
        configured `dataset` reads the events. `budget`: the nodes and the time the
        translation may spend (limits.Budget)."""
        self.dataset = dataset
        self.budget = budget or Budget()
        # the output names of each translated SELECT that can be NULL, by id of its node
        self._nullable_outputs: dict[int, set[str]] = {}
        self.points = tuple(p for p in points if p != dataset)
        self.tables: list[str] = []  # the dataset tables the query read, in order

    # statements ----------------------------------------------------------------------------

    def select(self, node: exp.Select) -> tuple[exp.Select, list[tuple[str, str]]]:
        scope, source = self._source(node.args.get("from_"))
        if (isinstance(source, exp.Subquery) and len(node.expressions) == 1
                and isinstance(node.expressions[0], exp.Star)
                and not any(node.args.get(k) is not None for k in
                            ("where", "group", "having", "order", "limit", "offset"))):
            # SELECT * FROM (q) is q: written once, since SQLite's parser takes only 14
            # levels of subqueries
            self._nullable_outputs[id(node)] = set(scope.nullable)
            return source.this, [(name, value.t) for name, value in scope.columns.items()]
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
        self._nullable_outputs[id(node)] = {
            name for name, expr in projections
            if expr is not None and self._may_be_null(expr, scope)}
        result = exp.Select(expressions=out)
        if source is not None:
            result.set("from_", exp.From(this=source))
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
                            # ClickHouse puts NULL (and NaN) last either way, unless
                            # told NULLS FIRST (then both first: NaN is NULL here)
                            nulls_first=bool(o.args.get("nulls_first")))
                for o in node.args["order"].expressions]))
        _check_grouping(result, self.budget)
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
        if (isinstance(value, exp.Literal) and not value.is_string
                and str(value.this).isdigit() and len(value.this.lstrip("0")) <= 19
                and int(value.this.lstrip("0") or "0") < 2 ** 63):
            return int(value.this.lstrip("0") or "0")
        raise InvalidQuery(f"{label} takes a non-negative integer below 2^63")

    def _position_or_expr(self, node: exp.Expression, scope: Scope) -> exp.Expression:
        if isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit():
            return exp.Literal.number(node.this)  # GROUP BY 1 / ORDER BY 2: positions
        return self.expr(node, scope).e

    def _source(self, source: exp.From | None) -> tuple[Scope, exp.Expression | None]:
        """The names the FROM makes visible, and its SQLite form (a subquery is
        translated once: translating it twice would double the cost at every level)."""
        if source is None:
            return Scope(columns={}), None
        this = source.this
        if isinstance(this, exp.Table):
            if this.args.get("db") or this.args.get("catalog") or (
                    this.name != self.dataset and this.name not in self.points):
                tables = (f"the only table is {self.dataset}" if not self.points else
                          f"the tables are {', '.join((self.dataset, *self.points))}")
                raise InvalidQuery(f"unknown table {this.sql('clickhouse')}; {tables} "
                                   "(SHOW TABLES)")
            self.tables.append(this.name)
            columns = {name: (T(_str(this.name), t) if name == "dataset"
                              else T(exp.column(name), t)) for name, t in AE_COLUMNS}
            qualifiers = {this.name} | ({this.alias} if this.alias else set())
            table = (points_source(this.name) if this.name != self.dataset
                     else exp.Table(this=exp.to_identifier(SOURCE_VIEW)))
            return Scope(columns=columns, qualifiers=qualifiers), table
        if isinstance(this, exp.Subquery) and isinstance(this.this, exp.Select):
            inner, inner_columns = self.select(this.this)
            columns = {name: T(exp.column(name, quoted=True), t) for name, t in inner_columns}
            scope = Scope(columns=columns, qualifiers={this.alias} if this.alias else set(),
                          nullable=self._nullable_outputs.get(id(this.this), set()))
            return scope, exp.Subquery(this=inner)
        raise InvalidQuery(f"FROM {this.sql('clickhouse')} is not supported: read the "
                           f"dataset table or a subquery")

    # expressions ------------------------------------------------------------------------------

    def expr(self, node: exp.Expression, scope: Scope) -> T:
        self.budget.spend()
        method = getattr(self, f"_x_{type(node).__name__}", None)
        if method is not None:
            return method(node, scope)
        if isinstance(node, exp.Func):
            return self.call(_call(node), scope)
        raise InvalidQuery(f"{_node_label(node)} is not supported in Analytics Engine SQL")

    def _x_Paren(self, node: exp.Paren, scope: Scope) -> T:
        # The builders parenthesise every compound operand (build._p), so the source's
        # own parentheses are not written: SQLite's parser takes few levels of them.
        return self.expr(node.this, scope)

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
            number = float(text)
            if not math.isfinite(number):  # ClickHouse's parser refuses it too
                raise InvalidQuery(f"the number {text[:24]}{'…' if len(text) > 24 else ''} "
                                   "is beyond the range of a Float64") from None
            return T(exp.Literal.number(repr(number)), "Float64")

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
        """A chain of ANDs (or ORs) as ClickHouse takes it, one call of many arguments:
        its terms gathered without recursion, and written as a balanced tree, which
        SQLite reads without going deeper than a few levels (a chain of 1,000 ORs would
        pass its depth of 1,000)."""
        cls = type(node)
        terms: list[exp.Expression] = []
        stack = [node]
        while stack:
            item = stack.pop()
            if type(item) is cls:
                stack += [item.expression, item.this]
            else:
                terms.append(self.expr(item, scope).e)
        while len(terms) > 1:
            terms = [_op(cls, *terms[i:i + 2]) if i + 1 < len(terms) else terms[i]
                     for i in range(0, len(terms), 2)]
        return T(terms[0], "UInt8")

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
            # ClickHouse divides by zero to inf or -inf by the dividend's sign (0/0 is
            # nan); SQLite answers NULL. a * inf has that sign, and is NaN (NULL) for 0.
            quotient = _op(exp.Div, _cast(a.e, "REAL"), b.e)
            return T(_fn("IIF", _op(exp.EQ, b.e.copy(), _num(0)),
                         _op(exp.Mul, a.e.copy(), _infinity()), quotient), "Float64")
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
        """DateTime compared with a string: the string is a time, as in ClickHouse, read
        in the DateTime's zone."""
        if _is_time(a.t) and b.t == "String":
            b = T(self._parse_in_zone(b, nb, zone_of(a.t)), a.t)
        elif _is_time(b.t) and a.t == "String":
            a = T(self._parse_in_zone(a, na, zone_of(b.t)), b.t)
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
                value = T(self._parse_in_zone(value, item, zone_of(a.t)), a.t)
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
        # SQLite's LIKE backtracks: one call can take long (its pattern is capped in
        # length, engine.py), so the deadline is looked at before each
        like = exp.Escape(this=exp.Like(this=_p(a.e), expression=_fn("ae_tick", b.e)),
                          expression=_str("\\"))
        return T(exp.Not(this=exp.Paren(this=like)) if node.args.get("negate") else like,
                 "UInt8")

    _x_ILike = _x_Like

    def _x_Is(self, node: exp.Is, scope: Scope) -> T:
        """`x IS NULL` (`IS NOT NULL` is its NOT). Analytics Engine's columns are not
        Nullable, so ClickHouse answers false for them and for anything computed from
        them, where SQLite would see its own NULLs (NaN, avg of nothing) as NULL. Only an
        expression built on a NULL literal can be NULL there: that one SQLite answers."""
        if not isinstance(node.expression, exp.Null):
            raise InvalidQuery(f"IS {node.expression.sql('clickhouse')} is not supported; "
                               "IS takes NULL or NOT NULL")
        inner = self.expr(node.this, scope)
        is_null = exp.Is(this=_p(inner.e), expression=exp.Null())
        if self._may_be_null(node.this, scope):
            return T(is_null, "UInt8")
        # false on every row; the expression stays in the query, so that an aggregate
        # still makes the query one that aggregates
        return T(_fn("IIF", is_null, _num(0), _num(0)), "UInt8")

    def _may_be_null(self, node: exp.Expression, scope: Scope,
                     seen: frozenset[str] = frozenset()) -> bool:
        """Whether ClickHouse can answer NULL for `node`: it holds a NULL literal, directly,
        through an alias of this SELECT, or through a column of a subquery that can."""
        for item in node.walk():
            self.budget.spend()
            if isinstance(item, exp.Null):
                return True
            if not isinstance(item, exp.Column):
                continue
            name = item.name
            if name in scope.nullable:
                return True
            if not item.table and name in scope.aliases and name not in seen:
                known = scope.null_aliases.get(name)
                if known is None:
                    known = self._may_be_null(scope.aliases[name], scope, seen | {name})
                    scope.null_aliases[name] = known
                if known:
                    return True
        return False

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

    # conditionals
    def _f_if(self, call: Call, args: list[T], scope: Scope) -> T:
        then, other = args[1], args[2]
        if then.t == other.t:
            t = then.t
        elif _is_num(then.t) and _is_num(other.t):
            t = "Float64" if "Float64" in (then.t, other.t) else supertype(then.t, other.t)
        elif NULL_TYPE in (then.t, other.t):
            t = then.t if other.t == NULL_TYPE else other.t
        else:
            raise InvalidQuery(f"if: branches of types {then.t} and {other.t} do not match")
        return T(_if_chain(args[0].e, then.e, other.e), t)

