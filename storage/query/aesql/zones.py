"""Time zones for the date functions' time-zone argument and DateTime('Zone') values, from
the IANA database (`zoneinfo`, with the pinned `tzdata` package where the system has
none).

A DateTime stays an instant (Unix seconds) whatever its zone; the zone decides how it is
rendered and what its calendar parts are. The local wall time of an instant is the
instant plus the zone's UTC offset then, which the translation writes as plain SQL: a
balanced tree of comparisons over the zone's transitions (about nine comparisons a row
for a zone with daylight saving time), so that no Python runs per row.

Such a tree has hundreds of comparisons, each with its own copy of the instant. The
translation carries it as one `ZoneLookup` node, whose text is written once per zone and
kind and kept, with the instant's text put in its places when the query is written out
(`sqlite.LogSQLite`). Its size, which the translation's budget is charged, is counted,
not built: a zoned function of a zoned function multiplies them.
"""

from __future__ import annotations

import bisect
import zoneinfo
from datetime import datetime, timezone
from functools import lru_cache
from typing import Callable, Sequence

from sqlglot import exp

from .build import _compound, _fn, _num, _op
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


def _constant(t: exp.Expression) -> int | None:
    """The value of an instant that is an integer literal (a constant input)."""
    if isinstance(t, exp.Literal) and not t.is_string and str(t.this).lstrip("-").isdigit():
        return int(t.this)
    return None


def piecewise_sql(t: exp.Expression, starts: Sequence[int],
                  leaf: Callable[[int], exp.Expression]) -> exp.Expression:
    """SQL for leaf(i) where starts[i] <= t < starts[i + 1] (leaf(0) before starts[1]):
    a balanced tree of comparisons on `t`, about nine for a zone with daylight saving
    time (the leaf itself for a constant `t`)."""
    known = _constant(t)
    if known is not None:
        return leaf(max(0, bisect.bisect_right(starts, known) - 1))

    def tree(lo: int, hi: int) -> exp.Expression:  # leaves lo..hi
        if lo == hi:
            return leaf(lo)
        mid = (lo + hi + 1) // 2
        return _fn("IIF", _op(exp.LT, t.copy(), _num(starts[mid])), tree(lo, mid - 1),
                   tree(mid, hi))

    return tree(0, len(starts) - 1)


def step_sql(t: exp.Expression, starts: Sequence[int], values: Sequence[int]) -> exp.Expression:
    """SQL for values[i] where starts[i] <= t < starts[i + 1]."""
    return piecewise_sql(t, starts, lambda i: _num(values[i]))


def _offset_tree(t: exp.Expression, name: str, days: int) -> exp.Expression:
    starts, offsets = transitions(name)
    return step_sql(t, starts, offsets)


def _wall_offset_tree(local: exp.Expression, name: str, days: int) -> exp.Expression:
    starts, offsets = wall_transitions(name)
    return step_sql(local, starts, offsets)


def offset_sql(t: exp.Expression, name: str) -> exp.Expression:
    """SQL for the UTC offset of `name` at instant `t`."""
    return _lookup("offset", t, name)


class ZoneLookup(exp.Expression):
    """One of the trees of this module over `this`, kept as one node (see the module's
    docstring). `kind` names its builder in _TREES; `days`, a start of days' interval."""
    arg_types = {"this": True, "kind": True, "zone": True, "days": True}

    def _kept(self) -> tuple[tuple[str, ...], int, int]:
        return _template(self.args["kind"], self.args["zone"], self.args["days"])

    def written(self, this: str) -> str:
        """The tree's SQLite text, given `this`'s."""
        parts, _, _ = self._kept()
        return (f"({this})" if _compound(self.this) else this).join(parts)

    def size(self) -> int:
        """The nodes of the tree written out: its own, and a copy of `this` in each place
        (and its parentheses)."""
        _, nodes, places = self._kept()
        return nodes + places * (expanded_size(self.this) + _compound(self.this))


def expanded_size(e: exp.Expression) -> int:
    """The nodes of `e` with each ZoneLookup in it written out."""
    total, stack = 0, [e]
    while stack:
        node = stack.pop()
        if isinstance(node, ZoneLookup):
            total += node.size()
            continue
        total += 1
        stack.extend(node.iter_expressions())
    return total


_HOLE = "__zone_instant__"  # the instant's place in a kept text


@lru_cache(maxsize=64)  # a text is 15-55 KB: a few zones at a time in use
def _template(kind: str, name: str, days: int) -> tuple[tuple[str, ...], int, int]:
    """(the text around each place of the instant, the tree's other nodes, its places)
    of the tree of `kind` for zone `name`."""
    tree = _TREES[kind](exp.column(_HOLE, quoted=True), name, days)
    places = sum(1 for n in tree.walk() if isinstance(n, exp.Column) and n.name == _HOLE)
    parts = tuple(tree.sql(dialect="sqlite", copy=False).split(f'"{_HOLE}"'))
    assert len(parts) == places + 1
    return parts, sum(1 for _ in tree.walk()) - places, places


def _lookup(kind: str, t: exp.Expression, name: str, days: int = 1) -> exp.Expression:
    """The tree of `kind` over `t`: written out for a constant `t` (it folds to a leaf),
    else kept as one node."""
    if _constant(t) is not None:
        return _TREES[kind](t, name, days)
    return ZoneLookup(this=t.copy(), kind=kind, zone=name, days=days)


@lru_cache(maxsize=64)
def midnight_corrections(name: str, days: int) -> tuple[tuple[int, int], ...]:
    """For each offset of transitions(name): (until, correction). From the change that
    starts it up to `until`, the local midnight that starts an instant's day (or
    `days`-day interval, counted from 1970-01-01) had the offset before the change, and
    lies `correction` seconds from where the instant's own offset puts it; after, 0."""
    starts, offsets = transitions(name)
    size = 86400 * days
    out = [(starts[0], 0)]
    for i in range(1, len(starts)):
        wall = starts[i] + offsets[i]
        midnight = wall - wall % size
        correction = offsets[i] - offset(name, utc_of_local(midnight, name))
        # up to the next day's (interval's) midnight, or the next change
        until = midnight + size - offsets[i]
        if i + 1 < len(starts):
            until = min(until, starts[i + 1])
        out.append((until, correction))
    return tuple(out)


def start_of_days_sql(t: exp.Expression, name: str, days: int = 1) -> exp.Expression:
    """SQL for the instant of the local midnight that starts the day of instant `t` in
    zone `name` (with `days` > 1: its interval of that many days, counted from
    1970-01-01): t less its local time of day, and on a day the clocks change, when the
    midnight had another offset than t, the difference. One lookup a row."""
    return _lookup("start_of_days", t, name, days)


def _start_of_days_tree(t: exp.Expression, name: str, days: int) -> exp.Expression:
    starts, offsets = transitions(name)
    corrections = midnight_corrections(name, days)
    size = _num(86400 * days)

    def leaf(i: int) -> exp.Expression:
        within = _op(exp.Mod, _op(exp.Add, t.copy(), _num(offsets[i])), size.copy())
        start = _op(exp.Sub, t.copy(), within)
        until, correction = corrections[i]
        if not correction:
            return start
        return _op(exp.Add, start, _fn("IIF", _op(exp.LT, t.copy(), _num(until)),
                                       _num(correction), _num(0)))

    return piecewise_sql(t, starts, leaf)


def local_sql(t: exp.Expression, name: str | None) -> exp.Expression:
    """The local wall time (seconds) of instant `t` in zone `name` (None: UTC)."""
    if name is None or name in UTC_NAMES:
        return t
    return _op(exp.Add, t, offset_sql(t, name))


@lru_cache(maxsize=64)
def wall_transitions(name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(wall starts, offsets): the offset a wall time in `name` is read with. ClickHouse
    reads a wall time that happens twice with the earlier offset, and one that the
    clocks skip with the later offset (02:30 on a day that goes from 02:00 to 03:00
    reads as 01:30 before the change): both change over at the old offset's wall time
    of the change."""
    starts, offsets = transitions(name)
    return ((starts[0],) + tuple(s + o for s, o in zip(starts[1:], offsets)), offsets)


def utc_of_local(local: int, name: str) -> int:
    """The instant that wall time `local` (seconds) in `name` reads as, as ClickHouse
    reads it."""
    starts, offsets = wall_transitions(name)
    return local - offsets[max(0, bisect.bisect_right(starts, local) - 1)]


def utc_of_local_sql(local: exp.Expression, name: str) -> exp.Expression:
    """SQL for utc_of_local of a wall-time expression."""
    return _op(exp.Sub, local, _lookup("wall_offset", local, name))


_TREES: dict[str, Callable[[exp.Expression, str, int], exp.Expression]] = {
    "offset": _offset_tree, "wall_offset": _wall_offset_tree,
    "start_of_days": _start_of_days_tree}


def local_of(t: int, name: str) -> int:
    starts, offsets = transitions(name)
    return t + offsets[max(0, bisect.bisect_right(starts, t) - 1)]


def available() -> list[str]:
    return sorted(zoneinfo.available_timezones() | {"UTC"})
