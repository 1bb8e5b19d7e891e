"""Raw data points of any dataset (SPEC §3.6): what a Worker's `writeDataPoint` wrote,
forwarded by the relay, kept in the log's `points` table (`storage/log/points.py`) and
answered by the same SQL engine as the service's own dataset. Here: a point made a row.

The `events` table cannot hold them: its index1 is the event's unique request id, and
the layouts derive a double from the received time, which a raw point does not have. So
raw points have a table of their own in the same file, written by the same writer in the
same group commits (an answer still means committed), with their own request id for
idempotency and the point's own index beside it. They are never replayed: replay reads
`events` only, so a point of another dataset stays in the log.
"""

from __future__ import annotations

from .datapoint import DataPoint

BLOBS = tuple(f"blob{i}" for i in range(1, 21))
DOUBLES = tuple(f"double{i}" for i in range(1, 21))
# A row of the table as the writer receives it (`rows`); `seq` is SQLite's.
COLUMNS = ("request_id", "dataset", "received_ms", "index1", *BLOBS, *DOUBLES)


def row(dataset: str, request_id: str, received_ms: int, point: DataPoint) -> tuple:
    """The table's row of one point (COLUMNS); unset slots are '' and 0."""
    blobs, doubles, indexes = point
    return (request_id, dataset, received_ms, indexes[0] if indexes else "",
            *blobs, *([""] * (20 - len(blobs))), *doubles, *([0.0] * (20 - len(doubles))))
