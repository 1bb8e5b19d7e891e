"""ClickHouse type names of values, as the translation tracks them, and the columns of a
dataset table."""

from __future__ import annotations

from typing import NamedTuple

from sqlglot import exp

# The columns of a dataset table, in Analytics Engine's order (SPEC §2).
AE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("dataset", "String"), ("timestamp", "DateTime"), ("_sample_interval", "UInt32"),
    ("index1", "String"),
    *((f"blob{i}", "String") for i in range(1, 21)),
    *((f"double{i}", "Float64") for i in range(1, 21)),
)


_INTS = {f"{s}Int{w}": (w, s == "") for w in (8, 16, 32, 64) for s in ("U", "")}
_INTS["Bool"] = (8, False)
NULL_TYPE = "Nullable(Nothing)"


def _is_int(t: str) -> bool:
    return t in _INTS


def _is_num(t: str) -> bool:
    return t in _INTS or t == "Float64"


def _is_time(t: str) -> bool:
    return t in ("DateTime", "Date") or t.startswith("DateTime(")


def zone_of(t: str) -> str | None:
    """The zone of a DateTime('Zone') type; None for UTC."""
    return t[10:-2] if t.startswith("DateTime('") else None


def datetime_type(zone: str | None) -> str:
    return "DateTime" if zone is None else f"DateTime('{zone}')"


def _int_type(width: int, signed: bool) -> str:
    return f"{'' if signed else 'U'}Int{min(width, 64)}"


def _literal_int_type(v: int) -> str:
    for w in (8, 16, 32, 64):
        if 0 <= v < 2 ** w:
            return f"UInt{w}"
        if -(2 ** (w - 1)) <= v < 0:
            return f"Int{w}"
    return "Float64"


def _arith_type(op: str, a: str, b: str) -> str:
    """ClickHouse's result type of an integer operation (the cases the dialect needs)."""
    if op == "divide" or "Float64" in (a, b) or not (_is_int(a) and _is_int(b)):
        return "Float64"
    (wa, sa), (wb, sb) = _INTS[a], _INTS[b]
    if op == "minus":
        return _int_type(max(wa, wb) * 2, True)
    if op == "modulo":
        return b if not (sa or sb) else _int_type(max(wa, wb) * 2, True)
    return _int_type(max(wa, wb) * 2, sa or sb)


def supertype(a: str, b: str) -> str:
    """ClickHouse's least supertype of two integer types (if's branches): UInt8 and Int8
    make Int16."""
    (wa, sa), (wb, sb) = _INTS[a], _INTS[b]
    if sa == sb:
        return _int_type(max(wa, wb), sa)
    unsigned, signed = (wa, wb) if sb else (wb, wa)
    return _int_type(unsigned * 2 if unsigned >= signed else signed, True)


class T(NamedTuple):
    """A translated SQLite expression and the ClickHouse type of its value."""
    e: exp.Expression
    t: str

