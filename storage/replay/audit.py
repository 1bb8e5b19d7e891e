"""Reconcile the local log with Cloudflare, per time bucket: did every event arrive, once?

Both sides are bucketed by event time: Cloudflare's `timestamp` is when a point was
replayed, so there the bucket comes from the double that carries the received time
(double2 in the profile layout, SPEC §4; double4 in the hoox layout, §9). Counts and sums
on Cloudflare's side are sampling-aware
(`sum(_sample_interval)`, `sum(double1 * _sample_interval)`).

A bucket whose totals agree and whose points are all distinct costs one row of one query.
Only a bucket that differs is inspected request by request (index1 = requestId), to name
what is missing, what is duplicated and what Cloudflare holds that the log does not.

Analytics Engine cannot delete, so duplicates stay: they are reported with their
requestIds on every audit, and readers of that range should count `DISTINCT index1`.
Repair re-sends exactly the missing events — never whole buckets, which would duplicate
everything that did arrive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Sequence

from ..intake.datapoint import MAX_POINTS_PER_CALL, DataPoint
from ..log import EventLog, point_columns, point_of

RunSQL = Callable[[str], Sequence[dict[str, Any]]]
SendPoints = Callable[[list[DataPoint]], Any]
Progress = Callable[[int], None]


class AuditError(Exception):
    """The audit could not be completed (for example, Cloudflare did not answer)."""


def close(a: float, b: float) -> bool:
    """Float sums added up in a different order on each side differ in the last bits."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@dataclass
class Bucket:
    start_s: int
    end_s: int
    local_count: int = 0
    local_latency: float = 0.0
    remote_count: int = 0  # sum(_sample_interval): events Cloudflare represents
    remote_latency: float = 0.0
    remote_points: int = 0  # count(): stored rows
    remote_ids: int = 0  # count(DISTINCT index1)
    inspected: bool = False
    missing: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # in the log, not replayed yet
    duplicates: dict[str, int] = field(default_factory=dict)  # requestId -> copies
    unknown: list[str] = field(default_factory=list)  # on Cloudflare, not in the log

    @property
    def sampled(self) -> bool:
        return self.remote_points != self.remote_count

    @property
    def totals_match(self) -> bool:
        return (self.local_count == self.remote_count
                and close(self.local_latency, self.remote_latency))

    @property
    def clean(self) -> bool:
        """Totals agree and no point is stored twice: nothing to inspect."""
        return (self.totals_match and self.remote_points == self.remote_ids
                and self.remote_ids == self.local_count)

    @property
    def matches(self) -> bool:
        if self.sampled:
            # Cloudflare keeps only some points of this bucket, each standing for
            # `_sample_interval` events: the totals are all there is to compare.
            return self.totals_match
        if self.inspected:
            return (self.totals_match and not self.missing and not self.pending
                    and not self.duplicates and not self.unknown)
        return self.clean

    @property
    def extra_copies(self) -> int:
        return sum(n - 1 for n in self.duplicates.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "bucket": format_bucket(self.start_s), "start": self.start_s, "end": self.end_s,
            "matches": self.matches,
            "local": {"events": self.local_count, "latencyMsSum": self.local_latency},
            "cloudflare": {"events": self.remote_count, "latencyMsSum": self.remote_latency,
                           "points": self.remote_points, "distinctIds": self.remote_ids,
                           "sampled": self.sampled},
            "missing": self.missing, "pending": self.pending,
            "duplicates": self.duplicates, "unknown": self.unknown,
        }


@dataclass
class Report:
    since_ms: int
    until_ms: int
    bucket_s: int
    buckets: list[Bucket]

    @property
    def ok(self) -> bool:
        return all(b.matches for b in self.buckets)

    @property
    def mismatched(self) -> list[Bucket]:
        return [b for b in self.buckets if not b.matches]

    def missing(self) -> list[str]:
        return [rid for b in self.buckets for rid in b.missing]

    def summary(self) -> dict[str, Any]:
        return {
            "buckets": len(self.buckets),
            "mismatched": len(self.mismatched),
            "localEvents": sum(b.local_count for b in self.buckets),
            "cloudflareEvents": sum(b.remote_count for b in self.buckets),
            "missing": sum(len(b.missing) for b in self.buckets),
            "pending": sum(len(b.pending) for b in self.buckets),
            "duplicated": sum(len(b.duplicates) for b in self.buckets),
            "extraCopies": sum(b.extra_copies for b in self.buckets),
            "unknown": sum(len(b.unknown) for b in self.buckets),
            "sampledBuckets": sum(1 for b in self.buckets if b.sampled),
            "ok": self.ok,
        }

    def as_dict(self) -> dict[str, Any]:
        return {"since": format_bucket(self.since_ms // 1000),
                "until": format_bucket(self.until_ms // 1000),
                "bucketSeconds": self.bucket_s, "summary": self.summary(),
                "buckets": [b.as_dict() for b in self.buckets]}


def format_bucket(start_s: int) -> str:
    return datetime.fromtimestamp(start_s, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(ms: int) -> str:
    """A bound in seconds as an SQL literal: exact for whole seconds and milliseconds."""
    whole, frac = divmod(ms, 1000)
    return str(whole) if not frac else f"{whole}.{frac:03d}"


def _as_int(value: Any) -> int:
    # The SQL API may render 64-bit integers as strings.
    return int(float(value)) if value is not None else 0


def _as_float(value: Any) -> float:
    return float(value) if value is not None else 0.0


class Auditor:
    """Compares the log with Cloudflare.

    `run_sql` runs Analytics Engine SQL on Cloudflare and returns its rows as dicts.
    `replayed_through` is the replay cursor (highest sequence number the sink confirmed):
    an event after it is pending, not missing, and repair must not send it — the
    replayer will.
    """

    def __init__(self, event_log: EventLog, run_sql: RunSQL, dataset: str):
        if not dataset.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"dataset {dataset!r} is not a plain table name")
        self.event_log = event_log
        self.run_sql = run_sql
        # hoox-analytics is not an identifier: quoted, as the platform's dashboard does.
        self.dataset = f'"{dataset}"' if "-" in dataset else dataset
        # The double that carries the received time (double2 in the profile layout).
        self.received = f"double{event_log.layout.received_double}"

    def run(self, since_ms: int, until_ms: int, bucket_s: int = 3600, *,
            replayed_through: int | None = None,
            track: Callable[[list[Bucket]], Iterable[Bucket]] = iter) -> Report:
        """`track` wraps the list of buckets as they are inspected (a progress bar)."""
        if until_ms <= since_ms:
            raise ValueError("--until must be after --since")
        if bucket_s <= 0:
            raise ValueError("the bucket must be at least one second")
        buckets: dict[int, Bucket] = {}

        def bucket(start: int) -> Bucket:
            if start not in buckets:
                # Edge buckets cover only the part of their span inside the range.
                buckets[start] = Bucket(start, start + bucket_s)
            return buckets[start]

        for start, n, latency in self.event_log.conn.execute(
                "SELECT (received_ms / 1000) / ? * ? AS b, count(*), total(double1)"
                " FROM events WHERE received_ms >= ? AND received_ms < ? GROUP BY b",
                (bucket_s, bucket_s, since_ms, until_ms)):
            b = bucket(start)
            b.local_count, b.local_latency = n, latency

        for row in self._remote(
                f"SELECT intDiv(toUInt32({self.received}), {bucket_s}) * {bucket_s} AS bucket,"
                f" sum(_sample_interval) AS events,"
                f" sum(double1 * _sample_interval) AS latency,"
                f" count() AS points, count(DISTINCT index1) AS ids"
                f" FROM {self.dataset}"
                f" WHERE {self.received} >= {_seconds(since_ms)}"
                f" AND {self.received} < {_seconds(until_ms)}"
                f" GROUP BY bucket ORDER BY bucket"):
            b = bucket(_as_int(row["bucket"]))
            b.remote_count = _as_int(row["events"])
            b.remote_latency = _as_float(row["latency"])
            b.remote_points = _as_int(row["points"])
            b.remote_ids = _as_int(row["ids"])

        ordered = [buckets[k] for k in sorted(buckets)]
        for b in track(ordered):
            # A sampled bucket no longer holds every point: its ids cannot be compared.
            if not b.clean and not b.sampled:
                self._inspect(b, max(b.start_s * 1000, since_ms),
                              min(b.end_s * 1000, until_ms), replayed_through)
        return Report(since_ms, until_ms, bucket_s, ordered)

    def _remote(self, sql: str) -> Sequence[dict[str, Any]]:
        try:
            return self.run_sql(sql)
        except AuditError:
            raise
        except Exception as e:  # the client's own errors, whatever their class
            raise AuditError(f"Cloudflare's SQL API failed: {e}") from e

    def _inspect(self, b: Bucket, lo_ms: int, hi_ms: int,
                 replayed_through: int | None) -> None:
        remote = {str(row["index1"]): _as_int(row["copies"]) for row in self._remote(
            f"SELECT index1, count() AS copies FROM {self.dataset}"
            f" WHERE {self.received} >= {_seconds(lo_ms)} AND {self.received} < {_seconds(hi_ms)}"
            f" GROUP BY index1 ORDER BY index1")}
        local = self.event_log.conn.execute(
            "SELECT seq, request_id FROM events WHERE received_ms >= ? AND received_ms < ?"
            " ORDER BY seq", (lo_ms, hi_ms)).fetchall()
        known = set()
        for seq, request_id in local:
            known.add(request_id)
            if request_id in remote:
                continue
            if replayed_through is not None and seq > replayed_through:
                b.pending.append(request_id)
            else:
                b.missing.append(request_id)
        b.duplicates = {rid: n for rid, n in sorted(remote.items()) if n > 1}
        b.unknown = sorted(rid for rid in remote if rid not in known)
        b.inspected = True


def missing_points(event_log: EventLog, request_ids: Iterable[str], chunk: int = 500
                   ) -> Iterator[DataPoint]:
    """The data point of each given event still in the log, in sequence order within each
    chunk of ids."""
    ids = list(request_ids)
    layout = event_log.layout
    for i in range(0, len(ids), chunk):
        part = ids[i:i + chunk]
        marks = ",".join("?" * len(part))
        for row in event_log.conn.execute(
                f"SELECT request_id, received_ms, {point_columns(layout)} FROM events"
                f" WHERE request_id IN ({marks}) ORDER BY seq", part):
            yield point_of(layout, row[0], row[1], row[2:])


def repair(event_log: EventLog, report: Report, send: SendPoints,
           batch: int = MAX_POINTS_PER_CALL, progress: Progress | None = None) -> int:
    """Hand exactly the missing events of `report` to `send`, as data points in batches
    the relay accepts; returns how many were sent. Pending events are left to the
    replayer, duplicates are left alone (Analytics Engine cannot delete)."""
    sent = 0
    points: list[DataPoint] = []
    for point in missing_points(event_log, report.missing()):
        points.append(point)
        if len(points) >= batch:
            send(points)
            sent += len(points)
            if progress is not None:
                progress(len(points))
            points = []
    if points:
        send(points)
        sent += len(points)
        if progress is not None:
            progress(len(points))
    return sent
