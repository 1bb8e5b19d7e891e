"""Moving events in and out of the log (SPEC §7): `ndjson` reads and writes the
interchange format, one event a line; `export` streams a time range of the log as NDJSON or
CSV. In: the log's rows, or an export's lines. Out: lines, or events for the log."""
