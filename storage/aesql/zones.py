"""Time zones for the date functions' time-zone argument and DateTime('Zone') values, from
the IANA database (`zoneinfo`, with the pinned `tzdata` package where the system has
none).

A DateTime stays an instant (Unix seconds) whatever its zone; the zone decides how it is
rendered and what its calendar parts are. The local wall time of an instant is the
instant plus the zone's UTC offset then, which the translation writes as plain SQL: a
balanced tree of comparisons over the zone's transitions (about nine comparisons a row
for a zone with daylight saving time), so that no Python runs per row.
"""

from __future__ import annotations

import bisect
import zoneinfo
from datetime import datetime, timezone
from functools import lru_cache

from sqlglot import exp

from .build import _fn, _num, _op
from .errors import InvalidQuery

# The span of instants whose offsets are written out; beyond it the nearest one holds.
_FIRST = 0                 # 1970-01-01
_LAST = 4_102_444_800      # 2100-01-01
_STEP = 86_400             # transitions are at least days apart
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "UCT", "Etc/UCT", "Zulu",
                       "Etc/Zulu", "Universal", "Etc/Universal", "Greenwich",
                       "Etc/Greenwich", "GMT0", "Etc/GMT0", "GMT+0", "GMT-0", "Etc/GMT+0",
                       "Etc/GMT-0"})


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone of that IANA name, or InvalidQuery naming it."""
    try:
        return _zone(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidQuery(f"unknown time zone {name!r}; SHOW TIMEZONES lists them") from None


@lru_cache(maxsize=256)
def _zone(name: str) -> zoneinfo.ZoneInfo:
    if not name or name.startswith("/") or ".." in name:
        raise ValueError(name)
    return zoneinfo.ZoneInfo(name)


def offset(name: str, t: int) -> int:
    """UTC offset in seconds of `name` at instant `t`."""
    delta = datetime.fromtimestamp(t, timezone.utc).astimezone(zone(name)).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


@lru_cache(maxsize=64)
def transitions(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(starts, offsets): from starts[i] on (up to starts[i+1]) the offset is offsets[i]."""
    zone(name)
    starts, offsets = [_FIRST], [offset(name, _FIRST)]
    t = _FIRST
    while t < _LAST:
        nxt = t + _STEP
        if offset(name, nxt) != offsets[-1]:
            lo, hi = t, nxt  # the change happens in (lo, hi]: find its second
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset(name, mid) == offsets[-1]:
                    lo = mid
                else:
                    hi = mid
            starts.append(hi)
            offsets.append(offset(name, hi))
        t = nxt
    return tuple(starts), tuple(offsets)


def offset_sql(t: exp.Expression, name: str) -> exp.Expression:
    """SQL for the UTC offset of `name` at instant `t`."""
    starts, offsets = transitions(name)

    def tree(lo: int, hi: int) -> exp.Expression:  # offsets[lo..hi]
        if lo == hi:
            return _num(offsets[lo])
        mid = (lo + hi + 1) // 2
        return _fn("IIF", _op(exp.LT, t.copy(), _num(starts[mid])), tree(lo, mid - 1),
                   tree(mid, hi))

    return tree(0, len(offsets) - 1)


def local_sql(t: exp.Expression, name: str | None) -> exp.Expression:
    """The local wall time (seconds) of instant `t` in zone `name` (None: UTC)."""
    if name is None or name in UTC_NAMES:
        return t
    return _op(exp.Add, t, offset_sql(t, name))


def utc_of_local(local: int, name: str) -> int:
    """The instant whose wall time in `name` is `local` (the earlier one when the wall
    time happens twice, the later when it is skipped)."""
    naive = datetime.fromtimestamp(local, timezone.utc).replace(tzinfo=None)
    return int(naive.replace(tzinfo=zone(name), fold=0).timestamp())


def local_of(t: int, name: str) -> int:
    starts, offsets = transitions(name)
    return t + offsets[max(0, bisect.bisect_right(starts, t) - 1)]


def available() -> list[str]:
    return sorted(zoneinfo.available_timezones() | {"UTC"})
