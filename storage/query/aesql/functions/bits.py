"""The bit* functions, bin and hex: integers at their ClickHouse width."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlglot import exp

from ..build import _fn, _num, _op, _p
from ..dialect import Call
from ..errors import InvalidQuery
from ..types import _INTS, NULL_TYPE, T, _int_type, _is_int, _is_time

if TYPE_CHECKING:
    from ..translate import Scope


class BitFunctions:
    def _width(self, t: str, *, time_ok: bool = False) -> int:
        """Bytes of an integer type; ClickHouse's bit functions refuse DateTime, but hex
        and bin take it as its UInt32."""
        if time_ok and _is_time(t):
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
        width = (8 if is_float or value.t in ("String", NULL_TYPE)
                 else self._width(value.t, time_ok=True))
        return T(_fn("ae_hex" if call.name == "hex" else "ae_bin", value.e, _num(width),
                     _num(int(is_float))), "String")

    _f_bin = _f_hex

