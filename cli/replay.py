"""`status`, `audit` and `replay`: the log and its backlog, the log against Cloudflare, and
the log sent to the sink."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import TYPE_CHECKING, Any, Callable, Sequence

import click

from storage import replay
from storage.config import VERSION, Config
from storage.intake.datapoint import MAX_POINTS_PER_CALL
from storage.interchange import export as export_
from storage.log import EventLog
from storage.replay import sink as sink_
from storage.replay.audit import AuditError, Auditor, Report, format_bucket
from storage.replay.audit import repair as repair_missing
from storage.replay.sink import SinkError

from .options import (
    Duration,
    clock,
    cloudflare_sql,
    db_option,
    http_client,
    interactive,
    json_option,
    load_config,
    open_log,
    progress_bar,
    table,
    time_range,
    track,
)

if TYPE_CHECKING:
    pass


@click.command()
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
    from storage.query.cloudflare import CloudflareError

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


@click.command()
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
    out.append(table(names, rows) if rows else "(no events on either side)")
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


@click.command("replay")
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
                     if ranged and interactive() else None)
            try:
                with progress_bar(total, "re-sending") as update:
                    for item in points:
                        batch.append(item)
                        if len(batch) == MAX_POINTS_PER_CALL:
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
