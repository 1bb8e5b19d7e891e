"""Date and time functions: now, today, toDateTime, formatDateTime, the toStartOf*
family and the calendar parts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from sqlglot import exp

from ..build import _fn, _int_expr, _num, _op, _str
from ..dialect import _UNIT_MONTHS, _UNIT_SECONDS, Call
from ..errors import InvalidQuery
from ..types import T, _is_num, _is_time

if TYPE_CHECKING:
    from ..translate import Scope


class TimeFunctions:
    def _f_now(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(exp.Placeholder(this="now"), "DateTime")

    def _f_today(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(exp.Placeholder(this="today"), "Date")

    def _f_toDateTime(self, call: Call, args: list[T], scope: Scope) -> T:
        self._check_tz(call, args, 1)
        value = args[0]
        if _is_time(value.t):
            return T(value.e, "DateTime")
        if value.t == "String":
            return self._as_time(value, call.args[0])
        if _is_num(value.t):
            return T(_int_expr(value.e), "DateTime")
        raise InvalidQuery(f"toDateTime of {value.t} is not supported")

    def _f_toUnixTimestamp(self, call: Call, args: list[T], scope: Scope) -> T:
        self._check_tz(call, args, 1)
        return T(self._time_arg(args, call).e, "UInt32")

    def _f_formatDateTime(self, call: Call, args: list[T], scope: Scope) -> T:
        self._check_tz(call, args, 2)
        return T(_fn("ae_format_datetime", self._time_arg(args, call).e, args[1].e), "String")

    def _start_of_seconds(self, t: exp.Expression, size: int) -> exp.Expression:
        # Plain integer arithmetic on Unix seconds: no Python call per row.
        return _op(exp.Sub, t, _op(exp.Mod, t, _num(size)))

    def _f_toStartOfInterval(self, call: Call, args: list[T], scope: Scope) -> T:
        self._check_tz(call, args, 2)
        t = self._time_arg(args, call).e
        n, unit = self._interval(call.args[1])
        if n <= 0:
            raise InvalidQuery("toStartOfInterval needs a positive interval")
        if unit in _UNIT_MONTHS:
            return T(_fn("ae_start_of_months", t, _num(n * _UNIT_MONTHS[unit])), "Date")
        if unit == "WEEK":  # weeks counted from Monday 1970-01-05 (day 4)
            days = _op(exp.Div, t, _num(86400))
            shifted = _op(exp.Sub, days, _num(4))
            start = _op(exp.Sub, days, _fn("mod", _op(exp.Add, _op(exp.Mod, shifted,
                                                                     _num(7 * n)),
                                                        _num(7 * n)), _num(7 * n)))
            return T(_op(exp.Mul, start, _num(86400)), "Date")
        if unit == "HOUR":  # hours counted from midnight of the same day
            day = self._start_of_seconds(t, 86400)
            within = _op(exp.Mod, t, _num(86400))
            size = 3600 * n
            return T(_op(exp.Add, day, _op(exp.Sub, within, _op(exp.Mod, within,
                                                                 _num(size)))), "DateTime")
        return T(self._start_of_seconds(t, n * _UNIT_SECONDS[unit]), "DateTime")

    def _start_of(self, size: int) -> Callable[..., T]:
        def handler(call: Call, args: list[T], scope: Scope) -> T:
            t = self._time_arg(args, call).e
            return T(self._start_of_seconds(t, size), "DateTime")
        return handler

    def __getattr__(self, name: str) -> Any:
        sizes = {"_f_toStartOfMinute": 60, "_f_toStartOfFiveMinutes": 300,
                 "_f_toStartOfTenMinutes": 600, "_f_toStartOfFifteenMinutes": 900,
                 "_f_toStartOfHour": 3600, "_f_toStartOfDay": 86400}
        if name in sizes:
            return self._start_of(sizes[name])
        raise AttributeError(name)

    def _unixepoch(self, t: exp.Expression, *modifiers: str) -> exp.Expression:
        return _fn("unixepoch", t, _str("unixepoch"), *[_str(m) for m in modifiers])

    def _f_toStartOfMonth(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._unixepoch(self._time_arg(args, call).e, "start of month"), "Date")

    def _f_toStartOfYear(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._unixepoch(self._time_arg(args, call).e, "start of year"), "Date")

    def _f_toStartOfQuarter(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_fn("ae_start_of_months", self._time_arg(args, call).e, _num(3)), "Date")

    def _days(self, t: exp.Expression) -> exp.Expression:
        return _op(exp.Div, t, _num(86400))

    def _f_toStartOfWeek(self, call: Call, args: list[T], scope: Scope) -> T:
        # Analytics Engine documents weeks starting on Monday (ClickHouse mode 1).
        if len(call.args) > 1:
            mode = call.args[1]
            if not (isinstance(mode, exp.Literal) and mode.this in ("1", "3")):
                raise InvalidQuery("toStartOfWeek: weeks start on Monday (mode 1) here")
        days = self._days(self._time_arg(args, call).e)
        monday = _op(exp.Sub, days, _op(exp.Mod, _op(exp.Add, days, _num(3)), _num(7)))
        return T(_op(exp.Mul, monday, _num(86400)), "Date")

    def _f_toDayOfWeek(self, call: Call, args: list[T], scope: Scope) -> T:
        days = self._days(self._time_arg(args, call).e)  # 1970-01-01 was a Thursday
        return T(_op(exp.Add, _op(exp.Mod, _op(exp.Add, days, _num(3)), _num(7)), _num(1)),
                 "UInt8")

    def _f_toHour(self, call: Call, args: list[T], scope: Scope) -> T:
        t = self._time_arg(args, call).e
        return T(_op(exp.Div, _op(exp.Mod, t, _num(86400)), _num(3600)), "UInt8")

    def _f_toMinute(self, call: Call, args: list[T], scope: Scope) -> T:
        t = self._time_arg(args, call).e
        return T(_op(exp.Div, _op(exp.Mod, t, _num(3600)), _num(60)), "UInt8")

    def _f_toSecond(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_op(exp.Mod, self._time_arg(args, call).e, _num(60)), "UInt8")

    def _strftime_int(self, t: exp.Expression, fmt: str) -> exp.Expression:
        return _int_expr(_fn("strftime", _str(fmt), t, _str("unixepoch")))

    def _f_toYear(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._time_arg(args, call).e, "%Y"), "UInt16")

    def _f_toMonth(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._time_arg(args, call).e, "%m"), "UInt8")

    def _f_toDayOfMonth(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._time_arg(args, call).e, "%d"), "UInt8")

    def _f_toYYYYMM(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._time_arg(args, call).e, "%Y%m"), "UInt32")

