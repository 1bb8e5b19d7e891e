"""Configuration: one table of settings, read from the environment.

The table is the single source for the defaults, the checks and the README's list of
variables (a test keeps the README in step with it).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .intake.layouts import DEFAULT as DEFAULT_LAYOUT
from .intake.layouts import LAYOUTS

VERSION = "0.1.0"
# Which source answers a /query (the router decides for "auto").
SOURCES = ("auto", "cloudflare", "local")


class ConfigError(Exception):
    """A setting is missing or has a value the service cannot use."""


@dataclass(frozen=True)
class Setting:
    env: str
    attr: str
    parse: Callable[[str], Any]
    help: str

    @property
    def default(self) -> Any:
        return getattr(Config, self.attr)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or a positive integer")
    return value


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return value

    return parse


def _keys(text: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in text.split(",") if k.strip())


def _text(text: str) -> str:
    return text.strip()


SETTINGS: tuple[Setting, ...] = (
    Setting("INTERNAL_KEY_BINDING", "internal_keys", _keys,
            "Required. Shared key(s) callers send in X-Internal-Auth-Key; several, "
            "comma-separated, while a key is rotated."),
    Setting("CLOUDFLARE_API_TOKEN", "cloudflare_api_token", _text,
            "API token with Account Analytics read, for /query from Cloudflare and audits."),
    Setting("CLOUDFLARE_ACCOUNT_ID", "cloudflare_account_id", _text,
            "Cloudflare account that owns the dataset."),
    Setting("CLOUDFLARE_API_BASE", "cloudflare_api_base", _text,
            "Base URL of Cloudflare's API."),
    Setting("CLOUDFLARE_TIMEOUT_MS", "cloudflare_timeout_ms", _positive_int,
            "Longest one call to the SQL API or the relay may take."),
    Setting("CLOUDFLARE_COOLDOWN_MS", "cloudflare_cooldown_ms", _positive_int,
            "After a failed call to the SQL API, /query with source auto answers from the "
            "local log for this long before it tries Cloudflare again."),
    Setting("ANALYTICS_MAX_LAG_MS", "max_lag_ms", _non_negative_int,
            "/query with source auto answers from Cloudflare while the oldest event replay "
            "has not confirmed yet was received at most this long ago; beyond it, from "
            "the local log."),
    Setting("ANALYTICS_LAYOUT", "layout", _choice(*LAYOUTS),
            "Event types and data points: profile (api-call only) or hoox (the "
            "platform's five event types). A log keeps the layout it was created with."),
    Setting("ANALYTICS_DATASET", "dataset", _text,
            "Analytics Engine dataset the events are written to and queried from "
            "(default: hoox_telemetry for the profile layout, hoox-analytics for hoox)."),
    Setting("ANALYTICS_DB", "db_path", _text,
            "Path of the SQLite event log."),
    Setting("ANALYTICS_SINK", "sink", _choice("relay", "stdout", "none"),
            "Where replay sends data points: relay (the relay Worker), stdout "
            "(print them), none."),
    Setting("ANALYTICS_RELAY_URL", "relay_url", _text,
            "URL of the relay Worker's /ingest, for ANALYTICS_SINK=relay."),
    Setting("ANALYTICS_RELAY_KEY", "relay_key", _text,
            "X-Internal-Auth-Key the relay Worker expects."),
    Setting("ANALYTICS_REPLAY_LEASE_MS", "replay_lease_ms", _positive_int,
            "How long the replay lease lasts without renewal; when its holder dies, "
            "another worker takes over after this (at least 3x CLOUDFLARE_TIMEOUT_MS)."),
    Setting("ANALYTICS_REPLAY_BACKOFF_MAX_MS", "replay_backoff_max_ms", _positive_int,
            "Cap of the replayer's exponential backoff after failures (a Retry-After "
            "from the relay is honoured even when longer)."),
    Setting("ANALYTICS_SYNC", "sync", _choice("normal", "full"),
            "SQLite durability: normal survives a killed process, full also a power cut."),
    Setting("ANALYTICS_RETENTION_DAYS", "retention_days", _positive_int,
            "Replayed events older than this are pruned from the log."),
    Setting("ANALYTICS_QUERY_TIMEOUT_MS", "query_timeout_ms", _positive_int,
            "Longest a local /query may run."),
    Setting("ANALYTICS_QUERY_MAX_ROWS", "query_max_rows", _positive_int,
            "Most rows a local /query returns; beyond it the result says truncated."),
    Setting("ANALYTICS_QUERY_MAX_ANSWER_BYTES", "query_max_answer_bytes", _positive_int,
            "Largest answer to a /query or the SQL API route, in bytes of its body; a query "
            "whose answer would be larger gets a 422 that names this limit, found before "
            "the whole answer is in memory."),
    Setting("ANALYTICS_QUERY_CONCURRENCY", "query_concurrency", _positive_int,
            "Heavy local queries (those that read many rows of the log) a worker runs at "
            "once; a few more wait, within their time limit, and past those a query is "
            "answered 503 at once. Queries of few rows, SHOW, /status and /health have "
            "lanes of their own and never wait behind them."),
    Setting("ANALYTICS_QUERY_MAX_VALUE_BYTES", "query_max_value_bytes", _positive_int,
            "Longest value a function of a local query may build (format, formatDateTime, "
            "hex, bin, topK, upperUTF8); a query past it gets a 422 that names this "
            "setting."),
    Setting("ANALYTICS_MIRROR", "mirror", _choice("chdb", "off"),
            "Local queries under gunicorn: chdb keeps a columnar copy of the log (embedded "
            "ClickHouse, in a process of its own) that answers them, the log's own engine "
            "standing in whenever it cannot; off: the log's engine alone."),
    Setting("ANALYTICS_MIRROR_MIN_EVENTS", "mirror_min_events", _non_negative_int,
            "The mirror's process starts once the log holds this many events (checked "
            "every few seconds); below it the log's engine answers every local query, "
            "and the service holds no copy."),
    Setting("ANALYTICS_MIRROR_DIR", "mirror_dir", _text,
            "Directory of the columnar copy (default: the log's path + .mirror); "
            "`analytics-worker mirror-rebuild` makes it again from the log."),
    Setting("ANALYTICS_MAX_BODY_BYTES", "max_body_bytes", _positive_int,
            "Largest request body, except /track/batch."),
    Setting("ANALYTICS_MAX_BATCH_BYTES", "max_batch_bytes", _positive_int,
            "Largest /track/batch body."),
    Setting("ANALYTICS_WRITER_QUEUE_EVENTS", "writer_queue_events", _positive_int,
            "Events a worker may have waiting for the service's writer at once; past it, "
            "requests wait up to 4 s for room, then get a 503 with nothing stored."),
    Setting("ANALYTICS_LOG_TRACEBACKS", "log_tracebacks", _choice("once", "always"),
            "An unexpected error is logged as one line with the request's id; its traceback "
            "goes with the first of each distinct error in a worker (once), or with every "
            "one (always, for debugging)."),
    Setting("ANALYTICS_HEADER_TIMEOUT_MS", "header_timeout_ms", _positive_int,
            "A connection that has not delivered a whole request (head and body) this long "
            "after connecting or after its previous response is closed, with a 408 where "
            "one can still be written."),
)


@dataclass(frozen=True)
class Config:
    internal_keys: tuple[str, ...] = ()
    cloudflare_api_token: str = ""
    cloudflare_account_id: str = ""
    cloudflare_api_base: str = "https://api.cloudflare.com/client/v4"
    cloudflare_timeout_ms: int = 5000
    cloudflare_cooldown_ms: int = 30000
    max_lag_ms: int = 60000
    layout: str = DEFAULT_LAYOUT
    dataset: str = ""  # empty: the layout's own dataset
    db_path: str = "var/analytics.db"
    sink: str = "stdout"
    relay_url: str = ""
    relay_key: str = ""
    replay_lease_ms: int = 30000
    replay_backoff_max_ms: int = 60000
    sync: str = "normal"
    retention_days: int = 92
    query_timeout_ms: int = 5000
    query_max_rows: int = 10000
    # One per worker: the aggregates are Python and hold the GIL, so a second heavy query
    # in the same worker only halves both (bench/README.md, "Bounded queries"); gunicorn's
    # workers use the cores.
    query_concurrency: int = 1
    # `SELECT *` of 10,000 rows (ANALYTICS_QUERY_MAX_ROWS) is 7.6 MB, the public queries
    # of tests/real_queries.py at most 0.8 MB, the dashboard's under 0.1 MB; a worker
    # answering 8 MiB peaks about 66 MB above its rest (bench/README.md)
    query_max_answer_bytes: int = 8_388_608
    # four times the blob bytes a data point holds (16,000): a format() of a point's
    # strings always fits
    query_max_value_bytes: int = 65536
    mirror: str = "chdb"
    mirror_dir: str = ""  # empty: beside the log
    mirror_min_events: int = 500_000
    max_body_bytes: int = 65536
    max_batch_bytes: int = 1048576
    writer_queue_events: int = 100_000
    header_timeout_ms: int = 10000
    log_tracebacks: str = "once"

    def __post_init__(self) -> None:
        if not self.dataset:
            object.__setattr__(self, "dataset", LAYOUTS[self.layout].dataset)

    @property
    def mirror_path(self) -> str:
        """The mirror's directory: as set, or beside the log."""
        return self.mirror_dir or self.db_path + ".mirror"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Config":
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for s in SETTINGS:
            raw = environ.get(s.env)
            if raw is None or raw == "":
                continue
            try:
                values[s.attr] = s.parse(raw)
            except ValueError as e:
                raise ConfigError(f"{s.env}={raw!r}: {e}") from None
        return cls(**values)

    def replace(self, **changes: Any) -> "Config":
        # A config on its layout's own dataset follows a change of layout.
        if "layout" in changes and "dataset" not in changes \
                and self.dataset == LAYOUTS[self.layout].dataset:
            changes["dataset"] = ""
        return dataclasses.replace(self, **changes)

    def require_keys(self) -> None:
        if not self.internal_keys:
            raise ConfigError(
                "INTERNAL_KEY_BINDING is not set: set it to the shared key callers send "
                "in X-Internal-Auth-Key (several keys may be given, comma-separated)")

    @property
    def cloudflare_configured(self) -> bool:
        return bool(self.cloudflare_api_token and self.cloudflare_account_id)
