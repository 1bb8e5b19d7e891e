"""Python functions and aggregates the local Analytics Engine SQL engine registers on its
SQLite connection, for what SQLite has no equivalent of.

Each one mirrors ClickHouse's behaviour (ClickHouse is what Analytics Engine runs); the
conformance suite compares them against chdb. Anything that SQLite can do natively is
translated to plain SQL in `aesql.py` instead: a Python call costs about a microsecond a
row, which dominates over a million rows.
"""

from __future__ import annotations

import calendar
import json
import math
import re
import sqlite3
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Callable

# -- bounds ----------------------------------------------------------------------------
# A function runs inside one step of SQLite's VM, where the engine's progress handler
# does not look at the clock: each one looks at the query's deadline itself, and refuses
# to build a value longer than the query's cap before building it.

DEFAULT_MAX_VALUE_BYTES = 65536
DATETIME_MAX = 4_294_967_295  # ClickHouse's DateTime is a UInt32 of seconds
DATE_DAYS = 65536             # and its Date a UInt16 of days


class ValueTooLarge(ValueError):
    """A function would build a value longer than the query's cap."""


class Stopped(Exception):
    """A function was called after the query's deadline."""


class _Bounds(threading.local):
    """The bounds of the query running on this thread (one connection, one query at a
    time), and the error a function last raised, which SQLite reports only as "a
    user-defined function raised an exception"."""
    deadline: float = math.inf
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES
    error: Exception | None = None


_bounds = _Bounds()


@contextmanager
def bounded(deadline: float, max_value_bytes: int) -> Iterator[None]:
    """The functions' bounds while a query runs on this thread."""
    _bounds.deadline, _bounds.max_value_bytes, _bounds.error = deadline, max_value_bytes, None
    try:
        yield
    finally:
        _bounds.deadline, _bounds.max_value_bytes = math.inf, DEFAULT_MAX_VALUE_BYTES


def take_error() -> Exception | None:
    """The error a function raised during the query on this thread, if any."""
    error, _bounds.error = _bounds.error, None
    return error


def _room(length: int, what: str) -> None:
    """Refuse a value of at least `length` characters (each at least one byte) beyond
    the cap, before it is built."""
    if length > _bounds.max_value_bytes:
        raise ValueTooLarge(f"{what} would build a value longer than "
                            f"{_bounds.max_value_bytes} bytes "
                            "(ANALYTICS_QUERY_MAX_VALUE_BYTES)")


def _tick() -> None:
    if time.monotonic() > _bounds.deadline:
        raise Stopped("the query's deadline passed")


def _checked(value: Any, what: str) -> Any:
    """`value`, unless it is a string of more bytes than the cap."""
    if isinstance(value, str) and 4 * len(value) > _bounds.max_value_bytes:
        _room(len(value.encode("utf-8", "surrogatepass")), what)
    return value


def _guarded(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    def guarded(*args: Any) -> Any:
        try:
            _tick()
            return _checked(fn(*args), name)
        except Exception as e:
            _bounds.error = e
            raise
    return guarded


def _guarded_aggregate(cls: type, name: str) -> type:
    class Guarded(cls):  # type: ignore[valid-type, misc]
        def step(self, *args: Any) -> None:
            try:
                _tick()
                super().step(*args)
            except Exception as e:
                _bounds.error = e
                raise

        def finalize(self) -> Any:
            try:
                return _checked(super().finalize(), name)
            except Exception as e:
                _bounds.error = e
                raise
    Guarded.__name__ = cls.__name__
    return Guarded


def tick(value: Any) -> Any:
    """`value`, once the deadline is checked: the translation puts it in front of the
    pattern of SQLite's LIKE, one call of which can take a tenth of a second."""
    return value

# -- dates -------------------------------------------------------------------------------

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def saturate(t: int) -> int:
    """A number of seconds as ClickHouse's toDateTime takes it: within the range of a
    DateTime (1970-01-01 00:00:00 to 2106-02-07 06:28:15), the nearest end beyond."""
    return min(max(t, 0), DATETIME_MAX)


def parse_datetime(text: Any) -> int | None:
    """ClickHouse's toDateTime of a string: 'YYYY-MM-DD hh:mm:ss', 'YYYY-MM-DD' or a
    string of Unix seconds, read as UTC, saturated to the range of a DateTime."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        return int(text)
    s = str(text).strip()
    if s.isdigit():
        digits = s.lstrip("0") or "0"
        return saturate(int(digits) if len(digits) <= 20 else DATETIME_MAX)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"):
        try:
            return saturate(calendar.timegm(time.strptime(s, fmt)))
        except ValueError:
            continue
    raise ValueError(f"Cannot parse {s[:64]!r} as a DateTime")


def add_months(t: int | None, months: int) -> int | None:
    """DateTime + INTERVAL n MONTH, clamping the day like ClickHouse (Jan 31 + 1 month is
    the last day of February)."""
    if t is None:
        return None
    d = datetime.fromtimestamp(t, timezone.utc)
    index = d.year * 12 + d.month - 1 + int(months)
    year, month = divmod(index, 12)
    day = min(d.day, calendar.monthrange(year, month + 1)[1])
    return calendar.timegm((year, month + 1, day, d.hour, d.minute, d.second))


def start_of_months(t: int | None, months: int) -> int | None:
    """toStartOfInterval(t, INTERVAL n MONTH|QUARTER|YEAR): months counted from year 0."""
    if t is None:
        return None
    d = time.gmtime(t)
    index = d.tm_year * 12 + d.tm_mon - 1
    year, month = divmod(index - index % int(months), 12)
    return calendar.timegm((year, month + 1, 1, 0, 0, 0))


def _hour12(d: time.struct_time) -> int:
    return d.tm_hour % 12 or 12


def _iso(d: time.struct_time) -> tuple[int, int, int]:
    return tuple(datetime(d.tm_year, d.tm_mon, d.tm_mday).isocalendar())  # type: ignore


# ClickHouse 26's format codes (checked one by one against chdb): each a function of the
# broken-down time. %e is the day without padding ('December 1, 2026').
_CODES: dict[str, Callable[[time.struct_time], str]] = {
    "a": lambda d: _DAYS[d.tm_wday][:3], "b": lambda d: _MONTHS[d.tm_mon - 1][:3],
    "c": lambda d: f"{d.tm_mon:02d}", "C": lambda d: f"{d.tm_year // 100:02d}",
    "d": lambda d: f"{d.tm_mday:02d}",
    "D": lambda d: f"{d.tm_mon:02d}/{d.tm_mday:02d}/{d.tm_year % 100:02d}",
    "e": lambda d: str(d.tm_mday), "f": lambda d: "000000",
    "F": lambda d: f"{d.tm_year:04d}-{d.tm_mon:02d}-{d.tm_mday:02d}",
    "g": lambda d: f"{_iso(d)[0] % 100:02d}", "G": lambda d: f"{_iso(d)[0]:04d}",
    "h": lambda d: f"{_hour12(d):02d}", "H": lambda d: f"{d.tm_hour:02d}",
    "i": lambda d: f"{d.tm_min:02d}", "I": lambda d: f"{_hour12(d):02d}",
    "j": lambda d: f"{d.tm_yday:03d}", "k": lambda d: f"{d.tm_hour:02d}",
    "l": lambda d: f"{_hour12(d):02d}", "m": lambda d: f"{d.tm_mon:02d}",
    "M": lambda d: _MONTHS[d.tm_mon - 1], "n": lambda d: "\n",
    "p": lambda d: "AM" if d.tm_hour < 12 else "PM",
    "Q": lambda d: str((d.tm_mon - 1) // 3 + 1),
    "r": lambda d: f"{_hour12(d):02d}:{d.tm_min:02d} {'AM' if d.tm_hour < 12 else 'PM'}",
    "R": lambda d: f"{d.tm_hour:02d}:{d.tm_min:02d}", "s": lambda d: f"{d.tm_sec:02d}",
    "S": lambda d: f"{d.tm_sec:02d}", "t": lambda d: "\t",
    "T": lambda d: f"{d.tm_hour:02d}:{d.tm_min:02d}:{d.tm_sec:02d}",
    "u": lambda d: str(d.tm_wday + 1), "V": lambda d: f"{_iso(d)[1]:02d}",
    "w": lambda d: str((d.tm_wday + 1) % 7), "W": lambda d: _DAYS[d.tm_wday],
    "y": lambda d: f"{d.tm_year % 100:02d}", "Y": lambda d: f"{d.tm_year:04d}",
    "z": lambda d: "+0000", "%": lambda d: "%",
}


@lru_cache(maxsize=256)
def datetime_pattern(fmt: str) -> tuple[tuple[str, Callable[[time.struct_time], str] | None],
                                         ...]:
    """A formatDateTime format as its pieces: (literal text, None) or ("", code's
    function). Refused as ClickHouse refuses it: a code it does not know, or a '%' at
    the end."""
    pieces: list[tuple[str, Callable[[time.struct_time], str] | None]] = []
    literal: list[str] = []
    i = 0
    while i < len(fmt):
        at = fmt.find("%", i)
        if at < 0:
            literal.append(fmt[i:])
            break
        literal.append(fmt[i:at])
        if at + 1 >= len(fmt):
            raise ValueError("'%' must not be the last character in the format string, "
                             "use '%%' instead")
        code = fmt[at + 1]
        if code not in _CODES:
            raise ValueError(f"Incorrect syntax '%{code}', symbol is not supported "
                             f"'{code}' for function formatDateTime")
        if literal:
            pieces.append(("".join(literal), None))
            literal = []
        pieces.append(("", _CODES[code]))
        i = at + 2
    if "".join(literal):
        pieces.append(("".join(literal), None))
    return tuple(pieces)


@lru_cache(maxsize=256)
def _shortest(fmt: str) -> int:
    """The fewest characters a format writes (each code writes at least one)."""
    return sum(len(text) if code is None else 1 for text, code in datetime_pattern(fmt))


def _gmtime(t: Any) -> time.struct_time:
    try:
        return time.gmtime(int(t))
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{t} seconds is outside the range of a date") from None


def format_datetime(t: int | None, fmt: str | None) -> str | None:
    """formatDateTime with ClickHouse's format codes (where %M is the month name and %i
    the minutes, unlike strftime), in UTC. The format is a constant of the query,
    checked when it is translated; each row costs the length of its answer."""
    if t is None or fmt is None:
        return None
    pieces = datetime_pattern(fmt)
    _room(_shortest(fmt), "formatDateTime")
    d = _gmtime(t)
    return "".join(text if code is None else code(d) for text, code in pieces)


def render_datetime(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", _gmtime(t))


def render_date(t: int) -> str:
    return time.strftime("%Y-%m-%d", _gmtime(t))


def wrap_datetime(t: Any) -> int:
    """A DateTime as ClickHouse holds it, a UInt32: arithmetic past either end wraps
    (toDateTime(4294967295) + 1 is 1970-01-01 00:00:00)."""
    return int(t) % (DATETIME_MAX + 1) if isinstance(t, int) or math.isfinite(t) else 0


def clamp_date(t: Any) -> int:
    """A Date (seconds at midnight here) within ClickHouse's, a UInt16 of days from
    1970-01-01, which its functions saturate to (toStartOfWeek of 1970-01-01)."""
    if not (isinstance(t, int) or math.isfinite(t)):
        return 0
    return min(max(int(t) // 86400, 0), DATE_DAYS - 1) * 86400


# -- numbers and strings ------------------------------------------------------------------

def _rounder(to_int: Any) -> Any:
    def rounding(x: Any, digits: int = 0) -> Any:
        """round(x, n), floor(x, n) and ceil(x, n) of a Float64 as ClickHouse computes
        them: to_int(x * 10^n) / 10^n (round: ties to even, measured equal to chdb on
        random values)."""
        if x is None or digits is None:
            return None
        if isinstance(x, int):
            if digits >= 0:
                return x
            scale = 10 ** -digits
            return to_int(x / scale) * scale
        if not math.isfinite(x):
            return x
        if digits >= 0:
            scale = 10.0 ** digits
            return to_int(x * scale) / scale
        scale = 10.0 ** -digits
        return to_int(x / scale) * scale
    return rounding


ch_round = _rounder(round)


ch_floor = _rounder(math.floor)
ch_ceil = _rounder(math.ceil)


def ch_float_str(x: Any) -> str | None:
    """A Float64 as ClickHouse prints it: the shortest repr, no trailing '.0'."""
    if x is None:
        return None
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    text = repr(x)
    if "e" in text:  # ClickHouse writes 1e-7, Python 1e-07
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


@lru_cache(maxsize=256)
def format_pattern(pattern: str, count: int) -> tuple[str | int, ...]:
    """ClickHouse's format() pattern as its pieces, literal text or an argument's index:
    `{}` (the next argument), `{N}` (argument N, digits only), `{{` and `}}` (a brace);
    anything else refused in ClickHouse's words, by ClickHouse's own scan (a `}}` is a
    brace even inside an open one). Never Python's str.format, whose `{0.__class__}`
    reads the server's objects."""
    def at(i: int) -> int:  # ClickHouse counts positions in bytes
        return len(pattern[:i].encode("utf-8", "surrogatepass"))

    pieces: list[str | int] = []
    automatic: bool | None = None  # {} seen (True) or {N} (False)
    used = 0  # the {} so far
    start, is_open, i, n = 0, False, 0, len(pattern)

    def text(part: str) -> None:
        part = part.replace("{{", "{").replace("}}", "}")
        if part:
            pieces.append(part)

    while i < n:
        c = pattern[i]
        if c in "{}" and i + 1 < n and pattern[i + 1] == c:
            i += 2  # an escaped brace, kept in the literal text
            continue
        if c == "{":
            if is_open:
                raise ValueError(f"Two open curly braces without close one at position {at(i)}")
            text(pattern[start:i])
            is_open, start = True, i + 1
        elif c == "}":
            if not is_open:
                raise ValueError(f"Closed curly brace without open one at position {at(i)}")
            is_open = False
            inside = pattern[start:i]
            if not inside:
                if automatic is False:
                    raise ValueError("Cannot switch from automatic field numbering to "
                                     "manual field specification")
                automatic, index = True, used
                used += 1
                if index >= count:
                    raise ValueError("Not enough arguments to fill the placeholders in "
                                     "the format string")
            else:
                if automatic is True:
                    raise ValueError("Cannot switch from automatic field numbering to "
                                     "manual field specification")
                # ClickHouse reads the leading digits, checks the number, then that
                # nothing follows it
                digits = len(inside) - len(inside.lstrip("0123456789"))
                if digits == 0:
                    raise ValueError(f"Not a number in curly braces at position {at(start)}")
                automatic = False
                index = int(inside[:digits]) if digits <= 10 else count
                if index >= count:
                    raise ValueError("Too big number for arguments, must be at most "
                                     f"{count - 1}")
                if digits < len(inside):
                    raise ValueError("Not a number in curly braces at position "
                                     f"{at(start + digits)}")
            pieces.append(index)
            start = i + 1
        i += 1
    if is_open:
        raise ValueError("Last open curly brace is not closed")
    text(pattern[start:])
    return tuple(pieces)


@lru_cache(maxsize=256)
def _format_plan(pattern: str, count: int) -> tuple[str, int, tuple[tuple[int, int], ...]]:
    """format_pattern's pieces as a template for Python's str.format holding only `{N}`
    fields and doubled braces (made here from checked pieces, never the client's text),
    the length of its literal text, and how often each argument is used."""
    pieces = format_pattern(pattern, count)
    literal = [p for p in pieces if isinstance(p, str)]
    template = "".join(p.replace("{", "{{").replace("}", "}}") if isinstance(p, str)
                       else f"{{{p}}}" for p in pieces)
    uses: dict[int, int] = {}
    for p in pieces:
        if isinstance(p, int):
            uses[p] = uses.get(p, 0) + 1
    return template, sum(map(len, literal)), tuple(uses.items())


def ch_format(pattern: str | None, *args: Any) -> str | None:
    """format('{} {}', a, b) as ClickHouse computes it (format_pattern); the arguments
    arrive already converted to strings; any NULL makes it NULL, as in ClickHouse."""
    if pattern is None or any(a is None for a in args):
        return None
    template, literal, uses = _format_plan(pattern, len(args))
    values = [str(a) for a in args]
    _room(literal + sum(n * len(values[i]) for i, n in uses), "format")
    return template.format(*values)


def _width_bytes(value: int, width: int) -> bytes:
    return (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big")


def ch_hex(x: Any, width: int = 8, is_float: int = 0) -> str | None:
    """hex(): integers as their bytes without leading zero bytes, strings as their UTF-8
    bytes, floats as their little-endian IEEE bytes."""
    if x is None:
        return None
    if is_float:
        return struct.pack("<d", float(x)).hex().upper()
    if isinstance(x, str):
        _room(2 * len(x), "hex")
        return x.encode("utf-8").hex().upper()
    data = _width_bytes(int(x), width).lstrip(b"\0") or b"\0"
    return data.hex().upper()


def ch_bin(x: Any, width: int = 8, is_float: int = 0) -> str | None:
    if x is None:
        return None
    if is_float:
        data = struct.pack("<d", float(x))
    elif isinstance(x, str):
        _room(8 * len(x), "bin")
        data = x.encode("utf-8")
    else:
        data = _width_bytes(int(x), width).lstrip(b"\0") or b"\0"
    return "".join(f"{b:08b}" for b in data)


def ch_substring(s: Any, offset: int | None, length: int | None = None) -> str | None:
    """substring(s, offset[, length]) by code point (Analytics Engine's substring is
    ClickHouse's substringUTF8), 1-based; a negative offset counts from the end, a
    negative length stops that many code points before the end."""
    if s is None or offset is None:
        return None
    text = str(s)
    offset = int(offset)
    if offset == 0:
        return ""
    # A negative offset counts from the end and may start before the string: the length
    # is still counted from there (ClickHouse: substring('/', -4, 2) is '').
    start = offset - 1 if offset > 0 else len(text) + offset
    if length is None:
        end = len(text)
    elif int(length) >= 0:
        end = start + int(length)
    else:
        end = len(text) + int(length)
    start, end = max(start, 0), max(end, 0)
    return text[start:end] if end > start else ""


def ch_to_uint(x: Any, bits: int) -> int | None:
    """toUInt8/toUInt32: truncate toward zero, wrap modulo 2^bits; strings are parsed."""
    if x is None:
        return None
    if isinstance(x, str):
        text = x.strip()
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(f"Cannot parse {x!r} as UInt{bits}")
        x = int(text)
    return int(x) & ((1 << bits) - 1)


def _as_width(x: int, width: int) -> int:
    return int(x) & ((1 << (8 * width)) - 1)


def bit_count(x: Any, width: int = 8) -> int | None:
    if x is None:
        return None
    return bin(_as_width(x, width)).count("1")


def bit_rotate(x: Any, n: Any, width: int = 8, left: int = 1) -> int | None:
    if x is None or n is None:
        return None
    bits = 8 * width
    value, n = _as_width(x, width), int(n) % bits
    if not left:
        n = (bits - n) % bits
    return ((value << n) | (value >> (bits - n))) & ((1 << bits) - 1)


def bit_hamming(a: Any, b: Any, width: int = 8) -> int | None:
    if a is None or b is None:
        return None
    return bin(_as_width(int(a) ^ int(b), width)).count("1")


def bit_xor(a: Any, b: Any) -> int | None:
    return None if a is None or b is None else int(a) ^ int(b)


def ends_with(s: Any, suffix: Any) -> int | None:
    if s is None or suffix is None:
        return None
    return int(str(s).endswith(str(suffix)))


def lower_utf8(s: Any) -> str | None:
    return None if s is None else str(s).lower()


def upper_utf8(s: Any) -> str | None:
    # a few characters grow (ß is SS): at most three times, and SQLite caps the bytes
    return None if s is None else str(s).upper()


# -- aggregates -----------------------------------------------------------------------------

class QuantileExactWeighted:
    """quantileExactWeighted(level)(x, w), ClickHouse's algorithm: sort the distinct
    values, walk the cumulative weight up to ceil(total * level)."""

    def __init__(self) -> None:
        self.weights: dict[Any, float] = {}
        self.level = 0.5

    def step(self, level: float, value: Any, weight: Any) -> None:
        self.level = level
        if value is None or weight is None or weight < 0:
            return
        # a value of weight 0 still counts: when every weight is 0, ClickHouse answers
        # the smallest value (its threshold is 0), not nan
        self.weights[value] = self.weights.get(value, 0) + weight

    def finalize(self) -> Any:
        if not self.weights:
            return None  # ClickHouse: nan for floats, rendered null
        items = sorted(self.weights.items())
        threshold = math.ceil(sum(w for _, w in items) * self.level)
        accumulated = 0.0
        for value, weight in items:
            accumulated += weight
            if accumulated >= threshold:
                return value
        return items[-1][0]


class ArgMax:
    """argMax(arg, val): the arg of the first row with the greatest val."""
    better = staticmethod(lambda new, old: new > old)

    def __init__(self) -> None:
        self.arg: Any = None
        self.val: Any = None

    def step(self, arg: Any, val: Any) -> None:
        if val is None:
            return
        if self.val is None or self.better(val, self.val):
            self.arg, self.val = arg, val

    def finalize(self) -> Any:
        return self.arg


class ArgMin(ArgMax):
    better = staticmethod(lambda new, old: new < old)


class FirstValue:
    def __init__(self) -> None:
        self.seen = False
        self.value: Any = None

    def step(self, value: Any) -> None:
        if not self.seen and value is not None:
            self.seen, self.value = True, value

    def finalize(self) -> Any:
        return self.value


class LastValue(FirstValue):
    def step(self, value: Any) -> None:
        if value is not None:
            self.seen, self.value = True, value


class TopKWeighted:
    """topK(k)(x) / topKWeighted(k)(x, w) as a JSON array, most frequent first. ClickHouse
    uses Space-Saving, which is exact while the distinct values fit its capacity; ties
    keep first-seen order."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.k = 10

    def step(self, k: int, value: Any, weight: Any = 1) -> None:
        self.k = int(k)
        if value is not None and weight is not None:
            self.counts[value] += weight

    def finalize(self) -> str:
        order = {v: i for i, v in enumerate(self.counts)}
        top = sorted(self.counts.items(), key=lambda kv: (-kv[1], order[kv[0]]))[:self.k]
        _room(sum(len(str(v)) + 1 for v, _ in top), "topK")
        return json.dumps([v for v, _ in top], ensure_ascii=False)


class TopK(TopKWeighted):
    def step(self, k: int, value: Any) -> None:  # type: ignore[override]
        super().step(k, value, 1)


SCALARS: dict[str, tuple[int, Any]] = {
    "ae_parse_datetime": (1, parse_datetime),
    "ae_add_months": (2, add_months),
    "ae_start_of_months": (2, start_of_months),
    "ae_format_datetime": (2, format_datetime),
    "ae_datetime_str": (1, lambda t: None if t is None else render_datetime(t)),
    "ae_date_str": (1, lambda t: None if t is None else render_date(t)),
    "ae_round": (2, ch_round),
    "ae_floor": (2, ch_floor),
    "ae_ceil": (2, ch_ceil),
    "ae_float_str": (1, ch_float_str),
    "ae_format": (-1, ch_format),
    "ae_hex": (3, ch_hex),
    "ae_bin": (3, ch_bin),
    "ae_substring2": (2, ch_substring),
    "ae_substring": (3, ch_substring),
    "ae_to_uint": (2, ch_to_uint),
    "ae_bit_count": (2, bit_count),
    "ae_bit_rotate": (4, bit_rotate),
    "ae_bit_hamming": (3, bit_hamming),
    "ae_bit_xor": (2, bit_xor),
    "ae_ends_with": (2, ends_with),
    "ae_lower_utf8": (1, lower_utf8),
    "ae_upper_utf8": (1, upper_utf8),
    "ae_tick": (1, tick),
}

AGGREGATES: dict[str, tuple[int, type]] = {
    "ae_quantile_weighted": (3, QuantileExactWeighted),
    "ae_arg_max": (2, ArgMax),
    "ae_arg_min": (2, ArgMin),
    "ae_first_value": (1, FirstValue),
    "ae_last_value": (1, LastValue),
    "ae_top_k": (2, TopK),
    "ae_top_k_weighted": (3, TopKWeighted),
}

# SQLite's own functions the translation emits; the authorizer allows these and ours.
SQLITE_BUILTINS = frozenset({
    "count", "sum", "avg", "min", "max", "coalesce", "iif", "length", "lower", "upper",
    "substr", "instr", "ln", "pow", "power", "floor", "ceil", "mod", "unixepoch",
    "strftime", "like", "abs", "cast",
})


# Our functions by the name a query calls them, for the cap's message.
_NAMES = {"ae_format": "format", "ae_format_datetime": "formatDateTime", "ae_hex": "hex",
          "ae_bin": "bin", "ae_top_k": "topK", "ae_top_k_weighted": "topKWeighted",
          "ae_upper_utf8": "upperUTF8", "ae_lower_utf8": "lowerUTF8",
          "ae_substring": "substring", "ae_substring2": "substring"}
# Functions SQLite must call on every row, even with constant arguments.
_EVERY_ROW = frozenset({"ae_tick"})


def register(conn: sqlite3.Connection) -> None:
    for name, (nargs, fn) in SCALARS.items():
        conn.create_function(name, nargs, _guarded(fn, _NAMES.get(name, name)),
                             deterministic=name not in _EVERY_ROW)
    for name, (nargs, cls) in AGGREGATES.items():
        conn.create_aggregate(name, nargs, _guarded_aggregate(cls, _NAMES.get(name, name)))


def allowed_functions() -> frozenset[str]:
    return frozenset(SCALARS) | frozenset(AGGREGATES) | SQLITE_BUILTINS
