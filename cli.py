"""The `analytics-worker` command line: a thin layer over `storage`.

Every command reads the same environment as the server (SPEC §8), so
`ANALYTICS_DB=… analytics-worker …` works on the server's log.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import uuid
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import click

from storage.config import Config, ConfigError
from storage.events import EventParser
from storage.interchange import BadLine, parse_time, read_events
from storage.log import EventLog, LogError

IMPORT_BATCH = 1000


def load_config(**overrides: Any) -> Config:
    try:
        config = Config.from_env()
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    return config.replace(**{k: v for k, v in overrides.items() if v is not None})


def db_option(func: Callable) -> Callable:
    return click.option("--db", "db_path", metavar="PATH",
                        help="The event log (default: $ANALYTICS_DB or var/analytics.db).")(func)


def open_log(config: Config) -> EventLog:
    try:
        return EventLog(config.db_path, sync=config.sync)
    except LogError as e:
        raise click.ClickException(str(e)) from None


def clock() -> float:
    """Now, as Unix seconds: from the context's `clock` when a caller supplied one
    (`main(obj={"clock": …})`), so relative times are testable."""
    ctx = click.get_current_context(silent=True)
    supplied = (ctx.find_root().obj or {}).get("clock") if ctx is not None else None
    return (supplied or time.time)()


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class When(click.ParamType):
    """A moment as Unix milliseconds: ISO 8601 (UTC unless an offset is given), `now`,
    or a duration before now (`90s`, `15m`, `2h`, `7d`, `1w`)."""

    name = "WHEN"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip()
        if text.lower() == "now":
            return int(clock() * 1000)
        if match := _DURATION.match(text.lower()):
            return int((clock() - float(match[1]) * _UNIT_S[match[2]]) * 1000)
        try:
            return parse_time(text)
        except ValueError:
            self.fail(f"{text!r} is neither an ISO 8601 time (2026-11-24T17:00:00Z) nor a "
                      f"duration before now (15m, 2h, 7d)", param, ctx)


class Duration(click.ParamType):
    """A length of time in whole seconds: `30s`, `15m`, `1h`, `1d`."""

    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int):
            return value
        match = _DURATION.match(str(value).strip().lower())
        seconds = float(match[1]) * _UNIT_S[match[2]] if match else 0
        if not match or seconds < 1 or not seconds.is_integer():
            self.fail(f"{value!r} is not a whole number of seconds such as 30s, 15m, 1h, 1d",
                      param, ctx)
        return int(seconds)


def time_range(since_default: str | None = None, until_default: str | None = None
               ) -> Callable[[Callable], Callable]:
    """`--since` and `--until` (received time, `since` inclusive, `until` exclusive)."""
    def decorate(func: Callable) -> Callable:
        func = click.option("--until", type=When(), default=until_default,
                            help="End of the range, exclusive: ISO 8601, now, or a "
                                 "duration before now."
                                 + (f" [default: {until_default}]" if until_default else
                                    " [default: no end]"))(func)
        return click.option("--since", type=When(), default=since_default,
                            help="Start of the range, inclusive: ISO 8601 "
                                 "(2026-11-24T17:00:00Z), now, or a duration before now "
                                 "(2h, 7d)."
                                 + (f" [default: {since_default}]" if since_default else
                                    " [default: the first event]"))(func)
    return decorate


def json_option(func: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON instead of text for people.")(func)


def _interactive() -> bool:
    # Progress goes to stderr, and only to a terminal: piped or logged runs stay quiet.
    return sys.stderr.isatty()


@contextmanager
def progress_bar(length: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """An `update(n)` function that advances a bar on a terminal, and does nothing
    otherwise."""
    if not _interactive():
        yield lambda n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr,
                           show_pos=True) as bar:
        yield bar.update


def track(items: Sequence[Any], label: str) -> Iterator[Any]:
    """`items`, with a progress bar over them on a terminal."""
    if not _interactive():
        yield from items
        return
    with click.progressbar(items, label=label, file=sys.stderr, show_pos=True) as bar:
        yield from bar


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="analytics-worker")
def main() -> None:
    """Telemetry ingest with a local SQLite event log, replayed to Cloudflare
    Workers Analytics Engine. Settings come from the environment (see the README)."""


@main.command()
@click.option("--bind", default=None, metavar="HOST:PORT",
              help="Address to listen on (default 127.0.0.1:8787).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 2).")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(bind: str | None, workers: int | None, gunicorn_args: tuple[str, ...]) -> None:
    """Run the service under gunicorn with the project's defaults.

    \b
    Example:
      INTERNAL_KEY_BINDING=dev-key analytics-worker serve --bind 127.0.0.1:8787
    Arguments after -- go to gunicorn as they are.
    """
    try:
        load_config().require_keys()
    except ConfigError as e:
        raise click.ClickException(str(e)) from None
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:gunicorn_conf"]
    if bind:
        argv += ["--bind", bind]
    if workers:
        argv += ["--workers", str(workers)]
    argv += [*gunicorn_args, "app:create_app()"]
    os.execv(sys.executable, argv)


@main.command("import")
@db_option
@click.argument("source", type=click.File("rb"))
def import_(db_path: str | None, source: Any) -> None:
    """Load events from an NDJSON export (SPEC §7) into the log.

    Every line is validated as the HTTP API would; a bad line is reported with its
    number and not imported; requestIds already in the log are skipped. Exits 1 when a
    line was refused.

    \b
    Example:
      analytics-worker import --db var/analytics.db events.ndjson
    """
    config = load_config(db_path=db_path)
    event_log = open_log(config)
    parser = EventParser(lambda: str(uuid.uuid4()))
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
        for _, item in read_events(source, parser):
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


if __name__ == "__main__":
    main()
