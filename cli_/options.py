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
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import click
import httpx

from storage import export as export_
from storage import layouts, replay
from storage import sink as sink_
from storage.audit import AuditError, Auditor, Report, format_bucket
from storage.audit import repair as repair_missing
from storage.config import SOURCES, VERSION, Config, ConfigError
from storage.events import EventParser
from storage.interchange import BadLine, parse_time, read_events
from storage.log import EventLog, LogError, check_layout
from storage.sink import SinkError

if TYPE_CHECKING:
    from storage.cloudflare import CloudflareSQL

IMPORT_BATCH = 1000
# The SQL engine and the Cloudflare client (sqlglot) are imported by the commands that
# use them, so that export and import start fast and stay small.


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
        return EventLog(config.db_path, layout=config.layout, sync=config.sync)
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
    # A caller may decide instead (`main(obj={"interactive": True})`).
    ctx = click.get_current_context(silent=True)
    supplied = (ctx.find_root().obj or {}).get("interactive") if ctx is not None else None
    return sys.stderr.isatty() if supplied is None else bool(supplied)


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
        config = load_config()
        config.require_keys()
        check_layout(config.db_path, config.layout)
    except (ConfigError, LogError) as e:
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
        size = os.fstat(source.fileno()).st_size if _interactive() else None
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


@main.command()
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
    total = export_.count(event_log.conn, since, until) if _interactive() else None
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


@main.command()
@db_option
@click.argument("sql")
@click.option("-p", "--param", "params", multiple=True, metavar="VALUE",
              help="A value for the next ? placeholder; repeat for each. Read as JSON "
                   "when it is JSON (42, true, null, \"42\"), else as a string.")
@click.option("--source", type=click.Choice(SOURCES), default="auto", show_default=True,
              help="auto: Cloudflare while replay lags by at most ANALYTICS_MAX_LAG_MS, "
                   "else the local log.")
@json_option
def query(db_path: str | None, sql: str, params: tuple[str, ...], source: str,
          as_json: bool) -> None:
    """Run Analytics Engine SQL and print the result: a table, or JSON with --json
    (the body /query answers with).

    \b
    Examples:
      analytics-worker query "SELECT blob1 AS worker, count() AS calls FROM hoox_telemetry GROUP BY worker"
      analytics-worker query --source local --json \\
          "SELECT index1 FROM hoox_telemetry WHERE blob1 = ? LIMIT 5" -p trade-worker
    """
    from storage.aesql import InvalidQuery, LocalEngine, ParamsMismatch, QueryTimeout
    from storage.cloudflare import CloudflareError
    from storage.router import Breaker, Router

    config = load_config(db_path=db_path)
    event_log = open_log(config)
    values = [_param(p) for p in params]
    try:
        local = LocalEngine(config.db_path, dataset=config.dataset,
                            timeout_ms=config.query_timeout_ms,
                            max_rows=config.query_max_rows, now=clock)
        cloud = cloudflare_sql(config, config.query_max_rows) \
            if config.cloudflare_configured else None
        router = Router(local=local, cloud=cloud,
                        breaker=Breaker(config.cloudflare_cooldown_ms / 1000.0, clock),
                        replay_lag_ms=lambda: replay.lag_ms(
                            event_log, "relay", int(clock() * 1000)),
                        max_lag_ms=config.max_lag_ms, log=local)
        answer = router.query(sql, values, source)
    except (InvalidQuery, ParamsMismatch, QueryTimeout, CloudflareError) as e:
        raise click.ClickException(getattr(e, "message", None) or str(e)) from None
    finally:
        event_log.close()
    result = answer.result
    from storage.aesql.output import json_rows, render

    if result.format not in (None, "JSON"):  # the FORMAT clause picks the output
        click.echo(render(result, result.format).decode("utf-8"), nl=False)
        return
    if as_json:
        body = {"success": True, "results": json_rows(result.rows),
                "meta": result.meta, "rows": len(result.rows), "source": answer.source}
        if answer.replay_lag_ms is not None:
            body["replayLagMs"] = answer.replay_lag_ms
        if result.truncated:
            body["truncated"] = True
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    click.echo(_table([m["name"] for m in result.meta], result.rows))
    note = ", truncated" if result.truncated else ""
    click.echo(f"{len(result.rows)} row(s) from {answer.source}{note}", err=True)


def _param(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (str, int, float, bool)) else text


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).replace("\n", "\\n")


def _table(names: list[str], rows: Sequence[dict[str, Any]]) -> str:
    cells = [[_cell(row.get(n)) for n in names] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    numeric = [all(isinstance(row.get(n), (int, float)) and not isinstance(row.get(n), bool)
                   for row in rows) and bool(rows) for n in names]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths])] +
                     [line(r) for r in cells])


def http_client(config: Config) -> httpx.Client:
    """The caller's client when one was supplied (`main(obj={"http": …})`), else a new
    one bounded by CLOUDFLARE_TIMEOUT_MS."""
    ctx = click.get_current_context()
    supplied = (ctx.find_root().obj or {}).get("http")
    if supplied is not None:
        return supplied
    client = httpx.Client(timeout=httpx.Timeout(config.cloudflare_timeout_ms / 1000.0))
    ctx.call_on_close(client.close)
    return client


def cloudflare_sql(config: Config, max_rows: int) -> CloudflareSQL:
    from storage.cloudflare import CloudflareSQL

    if not config.cloudflare_configured:
        raise click.ClickException(
            "Cloudflare is not configured: set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID")
    return CloudflareSQL.from_config(config, http_client(config), max_rows)


@main.command("mirror-rebuild")
@db_option
def mirror_rebuild(db_path: str | None) -> None:
    """Make the columnar copy of the log (ANALYTICS_MIRROR=chdb) again from the log,
    with the service stopped (one process at a time opens the copy). The service also
    rebuilds it by itself when it finds the copy ahead of the log (a log replaced).

    \b
    Example:
      ANALYTICS_DB=/srv/analytics/analytics.db analytics-worker mirror-rebuild
    """
    from storage.mirror import MirrorStore

    config = load_config(db_path=db_path)
    open_log(config).close()  # the log's schema, and a clear message on a bad path
    started = time.monotonic()
    try:
        store = MirrorStore(config.db_path, config.mirror_path, config.dataset)
    except Exception as e:  # chdb missing, or the directory held by a running service
        raise click.ClickException(f"cannot open the mirror at {config.mirror_path}: {e}")
    try:
        copied = store.rebuild()
    finally:
        store.close()
    click.echo(f"mirror {config.mirror_path}: {copied:,} events from the log in "
               f"{time.monotonic() - started:.1f} s")


@main.command()
@db_option
@click.option("--offline", is_flag=True, help="Do not ask Cloudflare whether it answers.")
@json_option
def status(db_path: str | None, offline: bool, as_json: bool) -> None:
    """The log, the replay backlog and its last success and error, and whether
    Cloudflare's SQL API answers.

    \b
    Example:
      ANALYTICS_DB=/srv/analytics/analytics.db analytics-worker status --json
    """
    from storage.cloudflare import CloudflareError

    config = load_config(db_path=db_path)
    event_log = open_log(config)
    now_ms = int(clock() * 1000)
    try:
        replay_status = replay.status(event_log, config.sink, now_ms)
        body: dict[str, Any] = {
            "version": VERSION, "layout": config.layout, "dataset": config.dataset,
            "database": str(event_log.path), "events": event_log.kept_count(),
            "logBytes": event_log.size_bytes(), "replay": replay_status,
            "cloudflare": {"configured": config.cloudflare_configured, "reachable": None,
                           "error": None},
        }
    finally:
        event_log.close()
    if config.cloudflare_configured and not offline:
        try:
            cloudflare_sql(config, 100).run("SHOW TABLES")
            body["cloudflare"]["reachable"] = True
        except CloudflareError as e:
            body["cloudflare"].update(reachable=False, error=e.message)
    if as_json:
        click.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    backlog = replay_status["backlog"]
    cf = body["cloudflare"]
    reach = ("not configured" if not cf["configured"] else "not asked (--offline)"
             if cf["reachable"] is None else "answers" if cf["reachable"]
             else f"does not answer: {cf['error']}")
    oldest = (f", oldest received {backlog['oldestReceivedAt']} "
              f"({backlog['oldestAgeSeconds']:.0f} s ago)" if backlog["events"] else "")
    lines = [
        f"analytics-worker {VERSION}, layout {config.layout}, dataset {config.dataset}",
        f"log:        {body['database']}: {body['events']} events, "
        f"{body['logBytes'] / 1e6:.1f} MB",
        f"replay:     sink {replay_status['sink']}, backlog {backlog['events']} event(s)"
        f"{oldest}",
        f"            replayed through seq {replay_status['replayedThrough']}, "
        f"{replay_status['deadLetters']} dead letter(s)",
        f"            last success {replay_status['lastSuccessAt'] or 'never'}, "
        f"last error {replay_status['lastErrorAt'] or 'never'}"
        + (f": {replay_status['lastError']}" if replay_status["lastError"] else ""),
        f"cloudflare: {reach}",
    ]
    click.echo("\n".join(lines))


class AuditFailed(click.ClickException):
    """The audit could not run: exit 2, apart from 1 for "differences found"."""

    exit_code = 2


@main.command()
@db_option
@time_range(since_default="24h", until_default="5m")
@click.option("--bucket", type=Duration(), default="1h", show_default=True,
              help="Width of a bucket, by event time: 15m, 1h, 1d.")
@click.option("--repair", is_flag=True,
              help="Re-send exactly the missing events through ANALYTICS_SINK.")
@click.option("--show", type=int, default=10, show_default=True, metavar="N",
              help="requestIds listed per bucket and kind in text output (--json lists all).")
@json_option
def audit(db_path: str | None, since: int, until: int, bucket: int, repair: bool,
          show: int, as_json: bool) -> None:
    """Compare the log with Cloudflare per time bucket: counts and latency sums
    (sampling-aware), missing and duplicated events by requestId (index1).

    Buckets are by event time on both sides: Cloudflare's side is bucketed by the
    received time each point carries (double2; double4 in the hoox layout), since its
    timestamp is the replay time.
    Events after the replay cursor are reported as pending, not missing, and are left
    to the replayer. Analytics Engine cannot delete, so duplicates stay reported with
    their requestIds: count DISTINCT index1 over such a range. A point becomes
    queryable 30-60 s after it is written, so the range ends 5 minutes ago by default;
    after replay has caught up a backlog, wait a minute before --repair, or it re-sends
    points that were only not visible yet.

    Exit status: 0 when every bucket matches, 1 when one differs, 2 when the audit
    could not run.

    \b
    Examples:
      analytics-worker audit --since 2026-11-24T00:00:00Z --until 2026-11-25T00:00:00Z
      analytics-worker audit --since 7d --until 5m --bucket 1d --repair
    """
    if until <= since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    config = load_config(db_path=db_path)
    try:
        remote = cloudflare_sql(config, max_rows=2**62)
    except click.ClickException as e:
        raise AuditFailed(e.message) from None
    event_log = open_log(config)
    try:
        auditor = Auditor(event_log, lambda sql: remote.query(sql).rows, config.dataset)
        report = auditor.run(since, until, bucket,
                             replayed_through=event_log.replayed_through("relay"),
                             track=lambda items: track(items, "auditing"))
        repaired = None
        if repair and report.missing():
            repaired = _repair(config, event_log, report)
    except AuditError as e:
        raise AuditFailed(str(e)) from None
    finally:
        event_log.close()
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "repaired": repaired},
                              ensure_ascii=False, indent=2))
    else:
        click.echo(_audit_text(report, show, repaired, auditor.received))
    sys.exit(0 if report.ok else 1)


def _repair(config: Config, event_log: EventLog, report: Report) -> int:
    try:
        target = sink_.from_config(config.sink, relay_url=config.relay_url,
                                   relay_key=config.relay_key,
                                   timeout_ms=config.cloudflare_timeout_ms,
                                   http=http_client(config), clock=clock)
    except ValueError as e:
        raise AuditFailed(str(e)) from None
    sent = 0

    def send(points: list) -> None:
        nonlocal sent
        target.send(points, f"audit-repair-{uuid.uuid4().hex[:12]}")
        sent += len(points)

    try:
        with progress_bar(len(report.missing()), "re-sending") as update:
            return repair_missing(event_log, report, send, progress=update)
    except SinkError as e:
        raise AuditFailed(f"repair stopped after re-sending {sent} of "
                          f"{len(report.missing())} missing event(s): {e}") from None


def _ids(ids: Sequence[str], show: int) -> str:
    more = f", … {len(ids) - show} more" if len(ids) > show else ""
    return ", ".join(ids[:show]) + more


def _audit_text(report: Report, show: int, repaired: int | None,
                received: str = "double2") -> str:
    rows = []
    for b in report.buckets:
        state = ("ok" if b.matches else "MISMATCH") + (" (sampled)" if b.sampled else "")
        rows.append({"bucket": format_bucket(b.start_s), "local": b.local_count,
                     "local latency": round(b.local_latency, 3),
                     "cloudflare": b.remote_count,
                     "cloudflare latency": round(b.remote_latency, 3),
                     "missing": len(b.missing), "duplicated": len(b.duplicates),
                     "pending": len(b.pending), "unknown": len(b.unknown), "status": state})
    names = ["bucket", "local", "local latency", "cloudflare", "cloudflare latency",
             "missing", "duplicated", "pending", "unknown", "status"]
    out = [f"audit {format_bucket(report.since_ms // 1000)} .. "
           f"{format_bucket(report.until_ms // 1000)}, buckets of {report.bucket_s} s "
           f"by event time ({received} on Cloudflare)"]
    out.append(_table(names, rows) if rows else "(no events on either side)")
    for b in report.mismatched:
        when = format_bucket(b.start_s)
        if b.sampled:
            out.append(f"{when}: Cloudflare sampled this bucket ({b.remote_points} points "
                       f"stand for {b.remote_count} events): events cannot be named")
        if b.missing:
            out.append(f"{when}: missing {len(b.missing)}: {_ids(b.missing, show)}")
        if b.duplicates:
            dups = [f"{rid} x{n}" for rid, n in b.duplicates.items()]
            out.append(f"{when}: duplicated {len(b.duplicates)} ({b.extra_copies} extra "
                       f"copies): {_ids(dups, show)}")
        if b.pending:
            out.append(f"{when}: not replayed yet {len(b.pending)}: {_ids(b.pending, show)}")
        if b.unknown:
            out.append(f"{when}: on Cloudflare, not in the log {len(b.unknown)}: "
                       f"{_ids(b.unknown, show)}")
    s = report.summary()
    out.append(
        f"summary: {s['buckets']} bucket(s), {s['mismatched']} differ; local "
        f"{s['localEvents']} events, Cloudflare {s['cloudflareEvents']}; missing "
        f"{s['missing']}, duplicated {s['duplicated']} ({s['extraCopies']} extra copies), "
        f"pending {s['pending']}, unknown {s['unknown']}")
    if s["duplicated"]:
        out.append("Analytics Engine cannot delete duplicates: count DISTINCT index1 "
                   "over this range.")
    if repaired is not None:
        out.append(f"re-sent {repaired} missing event(s); they become queryable after a "
                   f"delay: audit again to confirm.")
    return "\n".join(out)


@main.command("replay")
@db_option
@time_range()
@click.option("--follow", is_flag=True,
              help="Keep replaying new events until interrupted (Ctrl-C).")
@click.option("--dry-run", is_flag=True,
              help="Print the data points (one JSON line each) instead of sending them; "
                   "the cursor does not move.")
@click.option("--max-failures", type=click.IntRange(min=1), default=5, show_default=True,
              help="Give up after this many failed attempts in a row (not with --follow).")
def replay_command(db_path: str | None, since: int | None, until: int | None, follow: bool,
                   dry_run: bool, max_failures: int) -> None:
    """Send the log to ANALYTICS_SINK: the backlog after the replay cursor, once
    (the default), or continuously (--follow); or re-send every event received in a
    time range (--since/--until), cursor or not — duplicates for whatever had arrived.

    The backlog is replayed under the same lease as the server's workers, so this never
    races them: while a server replays, this exits 1 and says so (--follow waits and
    takes over if the server stops).

    \b
    Examples:
      analytics-worker replay
      analytics-worker replay --dry-run | head
      analytics-worker replay --since 2026-11-24T00:00:00Z --until 2026-11-25T00:00:00Z
    """
    config = load_config(db_path=db_path)
    if config.sink == "none" and not dry_run:
        raise click.ClickException("ANALYTICS_SINK is none: nothing to send to; set "
                                   "ANALYTICS_SINK=relay (or stdout), or use --dry-run")
    ranged = since is not None or until is not None
    if ranged and follow:
        raise click.BadParameter("--follow replays the backlog; it takes no time range",
                                 param_hint="--follow")
    if since is not None and until is not None and until <= since:
        raise click.BadParameter("--until must be after --since", param_hint="--until")
    try:
        target: sink_.Sink = sink_.StdoutSink() if dry_run else sink_.from_config(
            config.sink, relay_url=config.relay_url, relay_key=config.relay_key,
            timeout_ms=config.cloudflare_timeout_ms, http=http_client(config), clock=clock)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    event_log = open_log(config)
    try:
        if ranged or dry_run:
            points = replay.points_between(event_log, since, until) if ranged else (
                replay.pending_all(event_log, config.sink))
            sent = 0
            batch: list = []
            total = (export_.count(event_log.conn, since, until)
                     if ranged and _interactive() else None)
            try:
                with progress_bar(total, "re-sending") as update:
                    for item in points:
                        batch.append(item)
                        if len(batch) == replay.MAX_POINTS_PER_CALL:
                            target.send([p.point for p in batch], f"resend-{batch[0].seq}")
                            sent += len(batch)
                            update(len(batch))
                            batch.clear()
                    if batch:
                        target.send([p.point for p in batch], f"resend-{batch[0].seq}")
                        sent += len(batch)
                        update(len(batch))
            except SinkError as e:
                raise click.ClickException(f"stopped after {sent} point(s): {e}") from None
            click.echo(f"{'printed' if dry_run else 're-sent'} {sent} point(s)", err=True)
            return
        replayer = replay.Replayer(
            event_log, target, lease_ms=config.replay_lease_ms,
            send_timeout_ms=config.cloudflare_timeout_ms, clock=clock,
            backoff=replay.Backoff(cap_s=config.replay_backoff_max_ms / 1000.0))
        total = replay.backlog(event_log, target.name).events
        with progress_bar(total, f"replaying to {target.name}") as update:
            if follow:
                _follow(replayer, update)
                return
            result = replayer.drain(max_failures=max_failures,
                                    progress=lambda t: update(t.sent + t.dead))
        if not result.drained and result.error is None:
            lease = replay.read_lease(event_log)
            holder = lease.holder if lease else "another process"
            raise click.ClickException(f"{holder} holds the replay lease and is replaying "
                                       f"(sent {result.sent} before it)")
        click.echo(f"sent {result.sent} point(s), dead-lettered {result.dead}", err=True)
        if not result.drained:
            raise click.ClickException(f"gave up after {max_failures} failed attempt(s): "
                                       f"{result.error}")
    finally:
        event_log.close()


def _follow(replayer: replay.Replayer, update: Callable[[int], None]) -> None:
    sent = dead = 0
    try:
        while True:
            tick = replayer.tick()
            sent, dead = sent + tick.sent, dead + tick.dead
            update(tick.sent + tick.dead)
            if tick.outcome == "failed":
                click.echo(f"replay failed, retrying: {tick.error}", err=True)
            time.sleep(tick.wait_s)
    except KeyboardInterrupt:
        pass
    finally:
        replayer.release()
        click.echo(f"sent {sent} point(s), dead-lettered {dead}", err=True)


if __name__ == "__main__":
    main()
