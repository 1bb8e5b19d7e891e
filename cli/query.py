"""`query` and `mirror-rebuild`: Analytics Engine SQL from the terminal, and the columnar
copy made again."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import click

from storage import replay
from storage.config import SOURCES

from .options import clock, cloudflare_sql, db_option, json_option, load_config, open_log, table

if TYPE_CHECKING:
    pass


# The SQL engine and the Cloudflare client (sqlglot) are imported by the commands that
# use them, so that export and import start fast and stay small.


@click.command()
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
    from storage.query.aesql import InvalidQuery, LocalEngine, ParamsMismatch, QueryTimeout
    from storage.query.cloudflare import CloudflareError
    from storage.query.router import Breaker, Router

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
    from storage.query.aesql.output import json_rows, render

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
    click.echo(table([m["name"] for m in result.meta], result.rows))
    note = ", truncated" if result.truncated else ""
    click.echo(f"{len(result.rows)} row(s) from {answer.source}{note}", err=True)


def _param(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, (str, int, float, bool)) else text


@click.command("mirror-rebuild")
@db_option
def mirror_rebuild(db_path: str | None) -> None:
    """Make the columnar copy of the log (ANALYTICS_MIRROR=chdb) again from the log,
    with the service stopped (one process at a time opens the copy). The service also
    rebuilds it by itself when it finds the copy ahead of the log (a log replaced).

    \b
    Example:
      ANALYTICS_DB=/srv/analytics/analytics.db analytics-worker mirror-rebuild
    """
    from storage.query.mirror import MirrorStore

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
