"""The SQLite text of a translation: sqlglot's SQLite, with each zone lookup written from
the text its zone keeps."""

from __future__ import annotations

from typing import Any

from sqlglot.dialects.sqlite import SQLite

from .zones import ZoneLookup


def _zone_lookup_sql(generator: Any, e: ZoneLookup) -> str:
    return e.written(generator.sql(e, "this"))


class LogSQLite(SQLite):
    class Generator(SQLite.Generator):
        TRANSFORMS = {**SQLite.Generator.TRANSFORMS, ZoneLookup: _zone_lookup_sql}
