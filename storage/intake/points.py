"""Raw data points of any dataset (SPEC §3.6): what a Worker's `writeDataPoint` wrote,
forwarded by the relay, kept in the log's `points` table and answered by the same SQL
engine as the service's own dataset.

The `events` table cannot hold them: its index1 is the event's unique request id, and
the layouts derive a double from the received time, which a raw point does not have. So
raw points have a table of their own in the same file, written by the same writer in the
same group commits (an answer still means committed), with their own request id for
idempotency and the point's own index beside it. They are never replayed: replay reads
`events` only, so a point of another dataset stays in the log.
"""

from __future__ import annotations

import sqlite3

from .datapoint import DataPoint

TABLE = "points"
BLOBS = tuple(f"blob{i}" for i in range(1, 21))
DOUBLES = tuple(f"double{i}" for i in range(1, 21))
# A row of the table as the writer receives it (`rows`); `seq` is SQLite's.
COLUMNS = ("request_id", "dataset", "received_ms", "index1", *BLOBS, *DOUBLES)

INSERT = (f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES "
          f"({', '.join('?' * len(COLUMNS))}) ON CONFLICT (dataset, request_id) DO NOTHING")


def create_table(conn: sqlite3.Connection) -> None:
    """Unset slots are '' and 0, as Analytics Engine shows them (0.0 costs no bytes: SQLite
    stores an integral REAL as an integer). The request id is unique per dataset: the same
    Idempotency-Key sent for two datasets is two sets of points, not duplicates."""
    blobs = ",\n".join(f"{b} TEXT NOT NULL DEFAULT ''" for b in BLOBS)
    doubles = ",\n".join(f"{d} REAL NOT NULL DEFAULT 0" for d in DOUBLES)
    conn.execute(f"""
        CREATE TABLE IF NOT EXISTS {TABLE} (
            seq INTEGER PRIMARY KEY,
            dataset TEXT NOT NULL,
            request_id TEXT NOT NULL,
            received_ms INTEGER NOT NULL,
            index1 TEXT NOT NULL DEFAULT '',
            {blobs},
            {doubles},
            UNIQUE (dataset, request_id)
        )""")
    # The expression is the translation's `timestamp`, after the dataset: a query of one
    # dataset with a time range is a range of this index, and listing the datasets is a
    # seek per dataset down it (`datasets`).
    conn.execute(f"CREATE INDEX IF NOT EXISTS points_dataset_timestamp ON {TABLE} "
                 "(dataset, received_ms / 1000)")


# The distinct datasets by skipping down the index: a seek per dataset, however many
# points each holds.
_DATASETS = f"""
    WITH RECURSIVE d(name) AS (
        SELECT (SELECT min(dataset) FROM {TABLE})
        UNION ALL
        SELECT (SELECT min(dataset) FROM {TABLE} WHERE dataset > d.name) FROM d
        WHERE d.name IS NOT NULL)
    SELECT name FROM d WHERE name IS NOT NULL"""


def datasets(conn: sqlite3.Connection) -> tuple[str, ...]:
    """The datasets that hold at least one point, in order; none in a log written before
    the table existed."""
    try:
        return tuple(row[0] for row in conn.execute(_DATASETS))
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):
            return ()
        raise


def row(dataset: str, request_id: str, received_ms: int, point: DataPoint) -> tuple:
    """The table's row of one point (COLUMNS); unset slots are '' and 0."""
    blobs, doubles, indexes = point
    return (request_id, dataset, received_ms, indexes[0] if indexes else "",
            *blobs, *([""] * (20 - len(blobs))), *doubles, *([0.0] * (20 - len(doubles))))
