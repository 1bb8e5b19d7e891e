"""Numeric functions: intDiv, log, pow, round/floor/ceil, toUInt*."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from ..build import _cast, _fn, _infinity, _int_expr, _num, _op
from ..dialect import Call
from ..errors import InvalidQuery
from ..types import NULL_TYPE, T, _is_int, _is_num, _is_time

if TYPE_CHECKING:
    from ..translate import Scope


class NumberFunctions:
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
        # ClickHouse's log is the natural one, and log(0) is -inf (SQLite's is NULL)
        x = args[0].e
        return T(_fn("IIF", _op(exp.EQ, x.copy(), _num(0)), _infinity(-1), _fn("ln", x)),
                 "Float64")

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
        if len(args) == 1:
            return T(_fn(call.name, args[0].e), args[0].t)
        return T(_fn(f"ae_{call.name}", args[0].e, args[1].e), args[0].t)

    _f_ceil = _f_floor

    def _f_toUInt8(self, call: Call, args: list[T], scope: Scope) -> T:
        bits = 8 if call.name == "toUInt8" else 32
        value = args[0]
        if _is_num(value.t) or _is_time(value.t):
            return T(_op(exp.BitwiseAnd, _int_expr(value.e), _num(2 ** bits - 1)),
                     f"UInt{bits}")
        return T(_fn("ae_to_uint", value.e, _num(bits)), f"UInt{bits}")

    _f_toUInt32 = _f_toUInt8

