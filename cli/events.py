"""`import` and `export`: events in from NDJSON, out as NDJSON or CSV (SPEC §7)."""

from __future__ import annotations

import os
import sys
import uuid
from typing import TYPE_CHECKING, Any, Iterator

import click

from storage.intake import layouts
from storage.intake.events import EventParser
from storage.interchange import export as export_
from storage.interchange.ndjson import BadLine, read_events
from storage.log import LogError

from .options import db_option, interactive, load_config, open_log, progress_bar, time_range

if TYPE_CHECKING:
    pass


IMPORT_BATCH = 1000
# The SQL engine and the Cloudflare client (sqlglot) are imported by the commands that
# use them, so that export and import start fast and stay small.


@click.command("import")
@db_option
@click.argument("source", type=click.File("rb"))
def import_(db_path: str | None, source: Any) -> None:
    """Load events from an NDJSON export into the log.

    Every line is validated as the HTTP API would; a bad line is reported with its
    number and not imported; requestIds already in the log are skipped. Exits 1 when a
    line was refused.

    \b
    Example:
      analytics-worker import --db var/analytics.db events.ndjson
    """
    config = load_config(db_path=db_path)
    event_log = open_log(config)
    parser = EventParser(lambda: str(uuid.uuid4()), layouts.get(config.layout))
    imported = duplicates = 0
    bad: list[BadLine] = []
    pending = []

    def flush() -> None:
        nonlocal imported, duplicates
        if pending:
            result = event_log.append(pending)
            imported += result.accepted
            duplicates += result.duplicates
            pending.clear()

    try:
        size = os.fstat(source.fileno()).st_size if interactive() else None
    except (OSError, AttributeError, ValueError):  # a pipe has no size
        size = None
    try:
        with progress_bar(size, "importing") as update:
            def lines() -> Iterator[bytes]:
                for line in source:
                    update(len(line))
                    yield line

            for _, item in read_events(lines(), parser):
                if isinstance(item, BadLine):
                    bad.append(item)
                    continue
                pending.append(item)
                if len(pending) >= IMPORT_BATCH:
                    flush()
            flush()
    except LogError as e:
        raise click.ClickException(f"{e} (imported {imported} events before it)") from None
    for line in bad:
        where = "; ".join(f"{d['path']}: {d['message']}" for d in line.details) or line.error
        click.echo(f"line {line.line}: {where}", err=True)
    click.echo(f"imported {imported}, skipped {duplicates} already in the log, "
               f"refused {len(bad)} bad line(s)", err=True)
    if bad:
        sys.exit(1)


@click.command()
@db_option
@time_range()
@click.option("--format", "fmt", type=click.Choice(export_.FORMATS), default="ndjson",
              show_default=True, help="NDJSON (the interchange format import reads) or CSV.")
@click.option("-o", "--output", default="-", metavar="PATH",
              help="File to write (default: standard output).")
def export(db_path: str | None, since: int | None, until: int | None, fmt: str,
           output: str) -> None:
    """Write the events received in a time range, in sequence order.

    NDJSON lines carry each payload exactly as the log stores it, so an export imported
    into an empty log exports the same bytes. CSV has the columns requestId, type,
    receivedAt, worker, endpoint, latencyMs, success. Streamed: memory stays flat for any
    range.

    \b
    Examples:
      analytics-worker export --since 2026-11-24T00:00:00Z --until 2026-11-25T00:00:00Z -o day.ndjson
      analytics-worker export --since 7d --format csv > week.csv
    """
    if since is not None and until is not None and until <= since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    event_log = open_log(load_config(db_path=db_path))
    layout = event_log.layout
    total = export_.count(event_log.conn, since, until) if interactive() else None
    try:
        with click.open_file(output, "w", encoding="utf-8", lazy=False) as out, \
                progress_bar(total, "exporting") as update:
            written = export_.export(event_log.conn, out, fmt, since, until, update,
                                     layout=layout)
    except OSError as e:
        raise click.ClickException(f"Cannot write {output}: {e}") from None
    finally:
        event_log.close()
    click.echo(f"exported {written} event(s)", err=True)
