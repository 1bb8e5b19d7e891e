"""The log's table of raw data points (SPEC §3.6): its schema, its insert and the datasets
it holds. A point becomes a row in `storage/intake/points.py`."""

from __future__ import annotations

import sqlite3

from ..intake.points import BLOBS, COLUMNS, DOUBLES

TABLE = "points"
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
