"""Aggregate functions: count, sum, avg, min/max, quantiles, argMax/argMin,
first/last_value, topK, and the -If combinators."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from ..build import _fn, _num, _str
from ..dialect import Call
from ..errors import InvalidQuery
from ..types import _INTS, NULL_TYPE, T, _is_int, _is_num, _is_time

if TYPE_CHECKING:
    from ..translate import Scope


class AggregateFunctions:
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
        if args[0].t == NULL_TYPE:  # sum(NULL) is NULL in ClickHouse, as in SQLite
            return T(exp.Sum(this=inner), NULL_TYPE)
        # ClickHouse sums an empty set to 0, SQLite to NULL
        return T(_fn("COALESCE", exp.Sum(this=inner), _num(0)), self._sum_type(args[0].t))

    def _f_avg(self, call: Call, args: list[T], scope: Scope) -> T:
        if args[0].t == NULL_TYPE:  # NULL, not NaN
            return T(exp.Avg(this=args[0].e), NULL_TYPE)
        if not _is_num(args[0].t):
            raise InvalidQuery(f"avg needs numbers, got {args[0].t}")
        inner = exp.Distinct(expressions=[args[0].e]) if call.distinct else args[0].e
        return T(exp.Avg(this=inner), "Float64")

    def _default(self, t: str) -> exp.Expression:
        return _str("") if t == "String" else _num(0)

    def _f_min(self, call: Call, args: list[T], scope: Scope) -> T:
        fn = exp.Min if call.name == "min" else exp.Max
        if args[0].t == NULL_TYPE:  # min(NULL) is NULL: no default value to fall back on
            return T(fn(this=args[0].e), NULL_TYPE)
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

