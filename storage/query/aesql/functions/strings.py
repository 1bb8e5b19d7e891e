"""String functions: length, empty, lower/upper, startsWith/endsWith, position,
substring, format."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from .. import udf as F
from ..build import _cast, _fn, _num, _op, _str
from ..dialect import Call
from ..errors import InvalidQuery
from ..types import NULL_TYPE, T

if TYPE_CHECKING:
    from ..translate import Scope


class StringFunctions:
    def _string(self, call: Call, args: list[T], *indexes: int) -> None:
        for i in indexes or range(len(args)):
            if args[i].t not in ("String", NULL_TYPE):
                raise InvalidQuery(f"{call.name} needs a String, got {args[i].t}")

    def _f_length(self, call: Call, args: list[T], scope: Scope) -> T:
        self._string(call, args)
        # code points: Analytics Engine's length is ClickHouse's lengthUTF8
        return T(_fn("length", args[0].e), "UInt64")

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
        pattern = self._constant_string(call, 0)
        try:  # refused as ClickHouse refuses it, before any row is read
            F.format_pattern(pattern, len(args) - 1)
        except ValueError as e:
            raise InvalidQuery(f"format: {e}") from None
        return T(_fn("ae_format", args[0].e, *[self._to_string(a) for a in args[1:]]),
                 "String")

    def _constant_string(self, call: Call, index: int) -> str:
        """The string literal at call.args[index]: ClickHouse takes a constant there."""
        node = call.args[index]
        if not (isinstance(node, exp.Literal) and node.is_string):
            raise InvalidQuery(f"Argument at index {index} for function {call.name} must be "
                               "constant")
        return node.this

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

