"""The event log, the source of truth: one SQLite file. `EventLog` (`eventlog`) reads and
writes it; `schema` holds its migrations and views, `columns` how an event becomes a row
and a row a data point, `inserts` the group-commit insert loops, `errors` what it raises,
`counters` the service's durable counters, `retention` the pruning of old rows and `keys`
whether a request sent again under its Idempotency-Key is the same request.

Events and raw points come in from `storage.intake`; everything above reads and writes the
log through the names below."""

from .columns import (BLOBS, DOUBLES, event_rows, insert_sql, point_columns, point_of, range_sql,
                      stored_doubles)
from .errors import LayoutMismatch, LogError, LogFull, LogUnavailable
from .eventlog import EventLog
from .inserts import EVENTS, POINTS, AppendResult
from .keys import KeyReused
from .schema import MIGRATIONS, check_layout, recorded_layout

__all__ = [
    "AppendResult", "BLOBS", "DOUBLES", "EVENTS", "EventLog", "KeyReused", "LayoutMismatch",
    "LogError", "LogFull", "LogUnavailable", "MIGRATIONS", "POINTS", "check_layout",
    "event_rows", "insert_sql", "point_columns", "point_of", "range_sql", "recorded_layout",
    "stored_doubles",
]
