"""What the commands share: the settings, the log, times and durations as options, JSON
output, progress bars, and the HTTP and Cloudflare clients a caller may supply."""

from __future__ import annotations

import json
import re
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

import click
import httpx

from storage.config import Config, ConfigError
from storage.intake.timestamps import parse_time
from storage.log import EventLog, LogError

if TYPE_CHECKING:
    from storage.query.cloudflare import CloudflareSQL


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


def interactive() -> bool:
    # Progress goes to stderr, and only to a terminal: piped or logged runs stay quiet.
    # A caller may decide instead (`main(obj={"interactive": True})`).
    ctx = click.get_current_context(silent=True)
    supplied = (ctx.find_root().obj or {}).get("interactive") if ctx is not None else None
    return sys.stderr.isatty() if supplied is None else bool(supplied)


@contextmanager
def progress_bar(length: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """An `update(n)` function that advances a bar on a terminal, and does nothing
    otherwise."""
    if not interactive():
        yield lambda n: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr,
                           show_pos=True) as bar:
        yield bar.update


def track(items: Sequence[Any], label: str) -> Iterator[Any]:
    """`items`, with a progress bar over them on a terminal."""
    if not interactive():
        yield from items
        return
    with click.progressbar(items, label=label, file=sys.stderr, show_pos=True) as bar:
        yield from bar

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
    from storage.query.cloudflare import CloudflareSQL

    if not config.cloudflare_configured:
        raise click.ClickException(
            "Cloudflare is not configured: set CLOUDFLARE_API_TOKEN and CLOUDFLARE_ACCOUNT_ID")
    return CloudflareSQL.from_config(config, http_client(config), max_rows)


def cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value).replace("\n", "\\n")


def table(names: list[str], rows: Sequence[dict[str, Any]]) -> str:
    cells = [[cell(row.get(n)) for n in names] for row in rows]
    widths = [max([len(n)] + [len(r[i]) for r in cells]) for i, n in enumerate(names)]
    numeric = [all(isinstance(row.get(n), (int, float)) and not isinstance(row.get(n), bool)
                   for row in rows) and bool(rows) for n in names]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(names), line(["-" * w for w in widths])] +
                     [line(r) for r in cells])
