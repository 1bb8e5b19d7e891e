"""Date and time functions: now, today, toDateTime, formatDateTime, the toStartOf*
family and the calendar parts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from sqlglot import exp

from .. import udf as F
from ..build import _fn, _int_expr, _num, _op, _str
from ..dialect import _UNIT_MONTHS, _UNIT_SECONDS, Call
from ..errors import InvalidQuery
from ..types import T, _is_num, _is_time, datetime_type, zone_of
from ..zones import (UTC_NAMES, expanded_size, local_sql, start_of_days_sql, utc_of_local,
                     utc_of_local_sql, zone)

if TYPE_CHECKING:
    from ..translate import Scope


class TimeFunctions:
    # time zones ---------------------------------------------------------------------------

    def _zone_arg(self, call: Call, index: int, default: str | None) -> str | None:
        """The time zone named at call.args[index] (a string literal), else `default`."""
        if len(call.args) <= index:
            return default
        tz = call.args[index]
        if not (isinstance(tz, exp.Literal) and tz.is_string):
            raise InvalidQuery(f"{call.name}: the time zone must be a string such as "
                               "'America/New_York'")
        zone(tz.this)
        return tz.this

    def _zoned(self, args: list[T], call: Call,
               index: int) -> tuple[exp.Expression, exp.Expression, str | None]:
        """(local wall seconds, instant, zone) of the time argument: its zone is the
        argument at `index`, else its type's (DateTime('Zone')), else UTC."""
        value = self._time_arg(args, call)
        if value.t == "Date":
            return value.e, value.e, None
        name = self._zone_arg(call, index, zone_of(value.t))
        return self._spent(local_sql(value.e, name)), value.e, name

    def _floor(self, instant: exp.Expression, remainder: exp.Expression) -> exp.Expression:
        """The instant of a truncated local time within the hour or less: the instant
        less the local remainder (clocks change on whole hours, so the start of t's hour
        has t's offset). Starts of days go through `_start_of_days`."""
        return _op(exp.Sub, instant, remainder)

    def _start_of_days(self, t: exp.Expression, instant: exp.Expression, name: str | None,
                       days: int) -> exp.Expression:
        """The instant of the local midnight starting t's day (or n-day interval): in a
        zone, with that midnight's own offset, which differs from t's on the day the
        clocks change."""
        if name is None or name in UTC_NAMES:
            return self._floor(instant, _op(exp.Mod, t, _num(86400 * days)))
        return self._spent(start_of_days_sql(instant, name, days))

    def _f_now(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(exp.Placeholder(this="now"), "DateTime")

    def _f_today(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(exp.Placeholder(this="today"), "Date")

    def _parse_in_zone(self, value: T, node: exp.Expression, name: str | None) -> exp.Expression:
        """A date-time string read as wall time in zone `name`."""
        if name is None:
            return self._as_time(value, node).e
        if isinstance(node, exp.Literal) and node.is_string:
            try:
                return _num(utc_of_local(F.parse_datetime(node.this), name))
            except ValueError as e:
                raise InvalidQuery(str(e)) from None
        return self._spent(utc_of_local_sql(_fn("ae_parse_datetime", value.e), name))

    def _spent(self, e: exp.Expression) -> exp.Expression:
        """A zone's lookup, counted in the translation's budget by its nodes written out:
        one call writes a tree of comparisons over the zone's changes (a thousand nodes
        and more), where any other call adds a few."""
        self.budget.spend(expanded_size(e))  # type: ignore[attr-defined]
        return e

    def _f_toDateTime(self, call: Call, args: list[T], scope: Scope) -> T:
        value = args[0]
        name = self._zone_arg(call, 1, None)
        t = datetime_type(name)
        if _is_time(value.t):
            return T(value.e, t if name is not None or value.t == "Date" else value.t)
        if value.t == "String":
            return T(self._parse_in_zone(value, call.args[0], name), t)
        if _is_num(value.t):
            # ClickHouse saturates a number of seconds to the range of a DateTime
            # (toDateTime(1e30) is 2106-02-07 06:28:15)
            if isinstance(value.e, exp.Literal):  # a constant stays one: zone lookups fold it
                return T(_num(F.saturate(int(float(value.e.this)))), t)
            return T(_fn("max", _fn("min", _int_expr(value.e), _num(F.DATETIME_MAX)),
                         _num(0)), t)
        raise InvalidQuery(f"toDateTime of {value.t} is not supported")

    def _f_toUnixTimestamp(self, call: Call, args: list[T], scope: Scope) -> T:
        value = args[0]
        if value.t == "String":
            name = self._zone_arg(call, 1, None)
            return T(self._parse_in_zone(value, call.args[0], name), "UInt32")
        self._zone_arg(call, 1, None)
        return T(self._time_arg(args, call).e, "UInt32")

    def _f_formatDateTime(self, call: Call, args: list[T], scope: Scope) -> T:
        local, _, _ = self._zoned(args, call, 2)
        node = call.args[1]
        if not (isinstance(node, exp.Literal) and node.is_string):
            raise InvalidQuery("Argument at index 1 for function formatDateTime must be "
                               "constant")
        try:  # its codes checked once, as ClickHouse checks them, not on every row
            F.datetime_pattern(node.this)
        except ValueError as e:
            raise InvalidQuery(f"formatDateTime: {e}") from None
        return T(_fn("ae_format_datetime", local, args[1].e), "String")

    def _f_toStartOfInterval(self, call: Call, args: list[T], scope: Scope) -> T:
        t, instant, name = self._zoned(args, call, 2)
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
            within = _op(exp.Mod, t, _num(86400))
            return T(self._floor(instant, _op(exp.Mod, within, _num(3600 * n))),
                     datetime_type(name))
        if unit == "DAY":
            return T(self._start_of_days(t, instant, name, n), datetime_type(name))
        return T(self._floor(instant, _op(exp.Mod, t, _num(n * _UNIT_SECONDS[unit]))),
                 datetime_type(name))

    def _start_of(self, size: int) -> Callable[..., T]:
        def handler(call: Call, args: list[T], scope: Scope) -> T:
            t, instant, name = self._zoned(args, call, 1)
            if size == 86400:
                return T(self._start_of_days(t, instant, name, 1), datetime_type(name))
            return T(self._floor(instant, _op(exp.Mod, t, _num(size))), datetime_type(name))
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
        return T(self._unixepoch(self._zoned(args, call, 1)[0], "start of month"), "Date")

    def _f_toStartOfYear(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._unixepoch(self._zoned(args, call, 1)[0], "start of year"), "Date")

    def _f_toStartOfQuarter(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_fn("ae_start_of_months", self._zoned(args, call, 1)[0], _num(3)), "Date")

    def _days(self, t: exp.Expression) -> exp.Expression:
        return _op(exp.Div, t, _num(86400))

    def _f_toStartOfWeek(self, call: Call, args: list[T], scope: Scope) -> T:
        # Analytics Engine documents weeks starting on Monday (ClickHouse mode 1).
        if len(call.args) > 1:
            mode = call.args[1]
            if not (isinstance(mode, exp.Literal) and mode.this in ("1", "3")):
                raise InvalidQuery("toStartOfWeek: weeks start on Monday (mode 1) here")
        days = self._days(self._zoned(args, call, 2)[0])
        monday = _op(exp.Sub, days, _op(exp.Mod, _op(exp.Add, days, _num(3)), _num(7)))
        return T(_op(exp.Mul, monday, _num(86400)), "Date")

    def _f_toDayOfWeek(self, call: Call, args: list[T], scope: Scope) -> T:
        days = self._days(self._zoned(args, call, 1)[0])  # 1970-01-01 was a Thursday
        return T(_op(exp.Add, _op(exp.Mod, _op(exp.Add, days, _num(3)), _num(7)), _num(1)),
                 "UInt8")

    def _f_toHour(self, call: Call, args: list[T], scope: Scope) -> T:
        t = self._zoned(args, call, 1)[0]
        return T(_op(exp.Div, _op(exp.Mod, t, _num(86400)), _num(3600)), "UInt8")

    def _f_toMinute(self, call: Call, args: list[T], scope: Scope) -> T:
        t = self._zoned(args, call, 1)[0]
        return T(_op(exp.Div, _op(exp.Mod, t, _num(3600)), _num(60)), "UInt8")

    def _f_toSecond(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(_op(exp.Mod, self._zoned(args, call, 1)[0], _num(60)), "UInt8")

    def _strftime_int(self, t: exp.Expression, fmt: str) -> exp.Expression:
        return _int_expr(_fn("strftime", _str(fmt), t, _str("unixepoch")))

    def _f_toYear(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._zoned(args, call, 1)[0], "%Y"), "UInt16")

    def _f_toMonth(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._zoned(args, call, 1)[0], "%m"), "UInt8")

    def _f_toDayOfMonth(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._zoned(args, call, 1)[0], "%d"), "UInt8")

    def _f_toYYYYMM(self, call: Call, args: list[T], scope: Scope) -> T:
        return T(self._strftime_int(self._zoned(args, call, 1)[0], "%Y%m"), "UInt32")

