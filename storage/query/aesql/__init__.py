"""Analytics Engine SQL, answered from the local SQLite log or checked and sent to
Cloudflare.

Pipeline, one module a step:

- `parse`: sqlglot tokenizes and parses the text (ClickHouse dialect: Analytics Engine
  runs ClickHouse); `?` placeholders become literals in the tree; syntax errors are
  reported in SQL terms with line and column.
- `dialect`: the allow-list — the statements, clauses and functions Analytics Engine
  documents (SPEC §2, Cloudflare's SQL reference), their aliases and argument counts.
- `translate` + `functions/`: the checked tree rewritten node by node into SQLite, each
  value typed with the ClickHouse type name (`types`); plain SQL arithmetic on the integer
  `timestamp` wherever possible, Python functions (`udf`) where SQLite has none.
- `zones`: time zones; a lookup in one (a tree of comparisons over its changes) is kept
  as one node of the translation, its text written once per zone.
- `sqlite`: the translation written out as SQLite text (`LogSQLite`).
- `names`: the column names ClickHouse gives unaliased expressions.
- `engine`: `LocalEngine`, the read-only connection that runs the translation.
- `clickhouse`: `to_clickhouse`, the text for Cloudflare's SQL API.
- `output`: the FORMAT clause's bodies (JSON, JSONEachRow, TabSeparated).

Values follow ClickHouse: DateTime is kept as Unix seconds and rendered
'YYYY-MM-DD hh:mm:ss' (UTC unless a time zone is given), Date as seconds at midnight
rendered 'YYYY-MM-DD', `/` is a float division, `length` counts code points (it is
`lengthUTF8` in Analytics Engine), weeks start on Monday.
"""

from .clickhouse import to_clickhouse
from .dialect import FORMATS, FUNCTIONS
from .engine import Compiled, LocalEngine, compile_select
from .errors import (PREFIX, AnswerTooLarge, InvalidQuery, ParamsMismatch, QueryResult,
                     QueryTimeout)
from .parse import Parsed, parse
from .translate import Translator
from .types import AE_COLUMNS

__all__ = ["AE_COLUMNS", "AnswerTooLarge", "FORMATS", "FUNCTIONS", "PREFIX", "Compiled",
           "InvalidQuery", "LocalEngine", "ParamsMismatch", "Parsed", "QueryResult",
           "QueryTimeout", "Translator", "compile_select", "parse", "to_clickhouse"]
