"""A stand-in for Cloudflare on loopback: the relay Worker's protocol (SPEC §6) and the
Analytics Engine SQL API (SPEC §2), in one threaded HTTP server.

Points written through `/ingest` are checked against the same limits as the relay and
recorded with the time they were written as `timestamp` (as Analytics Engine does), into
a real ClickHouse table (chdb) with the dataset's columns; the SQL API answers from it,
so the cloud path of /query is checked against real ClickHouse semantics.

Failures on demand: `set_mode("refuse")` stops listening and drops open connections;
"500" answers 500; "429" answers 429 with `Retry-After`; "hang" accepts and never answers
(until the mode changes, at most `hang_limit_s`). `delay_s` slows every answer down.
`remove()` / `duplicate()` edit the recorded points by index1, for audit tests.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

import sqlglot
from sqlglot import exp

MAX_POINTS = 250
MAX_BLOBS = 20
MAX_DOUBLES = 20
MAX_INDEXES = 1
MAX_INDEX_BYTES = 96
MAX_BLOB_BYTES = 16_000
MAX_BODY_BYTES = 4 * 1024 * 1024
MODES = ("up", "refuse", "500", "429", "hang")

SQL_PATH = re.compile(r"^(?:/client/v4)?/accounts/([^/]+)/analytics_engine/sql/?$")
FORMAT_CLAUSE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)

# chdb runs one embedded ClickHouse per process and is not thread-safe: one session for
# every stand-in, each in its own database, every call under one lock.
_CHDB_LOCK = threading.Lock()
_chdb_session: Any = None
_databases = itertools.count(1)


def _session() -> Any:
    global _chdb_session
    if _chdb_session is None:
        from chdb import session

        _chdb_session = session.Session()
        # As Analytics Engine answers: UTC, and 64-bit integers quoted in JSON.
        _chdb_session.query("SET session_timezone = 'UTC'")
        _chdb_session.query("SET output_format_json_quote_64bit_integers = 1")
    return _chdb_session


class ChdbError(Exception):
    pass


def _run(sql: str, fmt: str = "CSV") -> str:
    """Under the lock; `sql` may be several statements joined by the caller."""
    try:
        result = _session().query(sql, fmt)
    except Exception as e:  # chdb raises its own error type for bad SQL
        raise ChdbError(str(e)) from None
    return result.bytes().decode("utf-8") if hasattr(result, "bytes") else str(result)


# Analytics Engine's functions that are other functions in stock ClickHouse (its SQL
# reference: `length` is `lengthUTF8`, `toLower` is `lowerUTF8`, …).
_RENAMED = {"length": "lengthUTF8", "substring": "substringUTF8", "substr": "substringUTF8"}
_RENAMED_EXACT = {"toLower": "lowerUTF8", "toUpper": "upperUTF8", "isEmpty": "empty"}


def _rename_calls(sql: str) -> str:
    tokens = sqlglot.tokenize(sql, read="clickhouse")
    parts, last = [], 0
    for token, following in zip(tokens, tokens[1:]):
        if following.text != "(":
            continue
        new = _RENAMED.get(token.text.lower()) or _RENAMED_EXACT.get(token.text)
        if new:
            parts += [sql[last:token.start], new]
            last = token.end + 1
    return "".join(parts) + sql[last:]


def to_chdb(sql: str) -> str:
    """Where Analytics Engine differs from stock ClickHouse: `quantileWeighted(q, x, w)`
    is `quantileExactWeighted(q)(x, w)` there, weeks start on Monday (`toStartOfWeek(t)`
    is mode 1), and strings are counted by code point. Other SQL passes unchanged."""
    sql = _rename_calls(sql)
    lowered = sql.lower()
    if "quantileweighted" not in lowered and "tostartofweek" not in lowered:
        return sql
    tree = sqlglot.parse_one(sql, read="clickhouse")

    def rename(node: exp.Expression) -> exp.Expression:
        if not isinstance(node, exp.Anonymous):
            return node
        name = node.name.lower()
        if name == "quantileweighted" and len(node.expressions) == 3:
            q, x, w = node.expressions
            return exp.ParameterizedAgg(this="quantileExactWeighted", expressions=[q.copy()],
                                        params=[x.copy(), w.copy()])
        if name == "tostartofweek" and len(node.expressions) == 1:
            return exp.Anonymous(this="toStartOfWeek",
                                 expressions=[node.expressions[0].copy(),
                                              exp.Literal.number(1)])
        return node

    return tree.transform(rename).sql(dialect="clickhouse")


def check_point(point: Any) -> list[str]:
    """Every reason the relay (relay/src/index.js) refuses a point."""
    if not isinstance(point, dict):
        return ["point must be an object"]
    reasons = [f'unknown field "{k}" (allowed: blobs, doubles, indexes)'
               for k in point if k not in ("blobs", "doubles", "indexes")]
    blobs, doubles, indexes = point.get("blobs"), point.get("doubles"), point.get("indexes")
    if blobs is not None:
        if not isinstance(blobs, list):
            reasons.append("blobs must be an array")
        else:
            if len(blobs) > MAX_BLOBS:
                reasons.append(f"too many blobs: {len(blobs)} (at most {MAX_BLOBS})")
            total = 0
            for j, b in enumerate(blobs):
                if isinstance(b, str):
                    total += len(b.encode("utf-8", "surrogatepass"))
                elif b is not None:
                    reasons.append(f"blobs[{j}] must be a string or null")
            if total > MAX_BLOB_BYTES:
                reasons.append(f"blobs total {total} bytes UTF-8 (at most {MAX_BLOB_BYTES})")
    if doubles is not None:
        if not isinstance(doubles, list):
            reasons.append("doubles must be an array")
        else:
            if len(doubles) > MAX_DOUBLES:
                reasons.append(f"too many doubles: {len(doubles)} (at most {MAX_DOUBLES})")
            for j, d in enumerate(doubles):
                if isinstance(d, bool) or not isinstance(d, (int, float)) or not math.isfinite(d):
                    reasons.append(f"doubles[{j}] must be a finite number")
    if indexes is not None:
        if not isinstance(indexes, list):
            reasons.append("indexes must be an array")
        else:
            if len(indexes) > MAX_INDEXES:
                reasons.append(f"too many indexes: {len(indexes)} (at most {MAX_INDEXES})")
            for j, x in enumerate(indexes):
                if isinstance(x, str):
                    n = len(x.encode("utf-8", "surrogatepass"))
                    if n > MAX_INDEX_BYTES:
                        reasons.append(f"indexes[{j}] is {n} bytes UTF-8 (at most {MAX_INDEX_BYTES})")
                elif x is not None:
                    reasons.append(f"indexes[{j}] must be a string or null")
    return reasons


@dataclass
class IngestCall:
    """One /ingest request as the stand-in saw it: for checking that two replayers never
    had the same batch in flight at once."""
    batch_id: str | None
    started: float
    ended: float = 0.0
    indexes: list[str] = field(default_factory=list)
    status: int = 0


class StandIn:
    def __init__(self, *, relay_key: str = "relay-key", api_token: str = "api-token",
                 account_id: str = "test-account", dataset: str = "hoox_telemetry",
                 clock: Callable[[], float] = time.time, hang_limit_s: float = 30.0):
        self.relay_key = relay_key
        self.api_token = api_token
        self.account_id = account_id
        self.dataset = dataset
        self.clock = clock
        self.hang_limit_s = hang_limit_s
        self.mode = "up"
        self.retry_after = "1"
        self.delay_s = 0.0
        # The relay names each bad point; off, the replayer has to find them by halving.
        self.report_details = True
        # The relay alone down (the SQL API still answering): replay falls behind.
        self.relay_down = False
        self.points: list[dict[str, Any]] = []
        self.calls: list[IngestCall] = []
        self.sql_requests: list[str] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._released.set()
        self._connections: set[socket.socket] = set()
        self.connections_opened = 0  # to see that clients reuse connections
        self._database = f"standin_{next(_databases)}"
        with _CHDB_LOCK:
            columns = ", ".join(
                ["dataset String", "timestamp DateTime", "_sample_interval UInt32 DEFAULT 1",
                 "index1 String"] + [f"blob{i} String" for i in range(1, 21)]
                + [f"double{i} Float64" for i in range(1, 21)])
            _run(f"CREATE DATABASE IF NOT EXISTS {self._database}")
            _run(f"CREATE TABLE {self._database}.`{dataset}` ({columns}) ENGINE = Memory")
        self._server: ThreadingHTTPServer | None = None
        self.port = 0
        self._listen()

    # -- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def relay_url(self) -> str:
        return self.url + "/ingest"

    @property
    def api_base(self) -> str:
        return self.url + "/client/v4"

    def env(self) -> dict[str, str]:
        """The service's settings that point it here."""
        return {"ANALYTICS_SINK": "relay", "ANALYTICS_RELAY_URL": self.relay_url,
                "ANALYTICS_RELAY_KEY": self.relay_key, "CLOUDFLARE_API_BASE": self.api_base,
                "CLOUDFLARE_API_TOKEN": self.api_token,
                "CLOUDFLARE_ACCOUNT_ID": self.account_id, "ANALYTICS_DATASET": self.dataset}

    # -- modes -----------------------------------------------------------------------------

    def set_mode(self, mode: str, *, retry_after: str = "1") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.retry_after = retry_after
        previous, self.mode = self.mode, mode
        if mode == "hang":
            self._released.clear()
        else:
            self._released.set()
        if mode == "refuse" and previous != "refuse":
            self._stop_listening()
        elif mode != "refuse" and self._server is None:
            self._listen()

    def _listen(self) -> None:
        standin = self

        class Handler(_Handler):
            pass

        Handler.standin = standin
        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name=f"standin-{self.port}").start()

    def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        # Kept-alive connections would otherwise go on being served.
        with self._lock:
            for conn in list(self._connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._released.set()
        self._stop_listening()
        with _CHDB_LOCK:
            _run(f"DROP DATABASE IF EXISTS {self._database}")

    def __enter__(self) -> "StandIn":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- what was written ------------------------------------------------------------------

    def indexes(self) -> list[str]:
        with self._lock:
            return [p["index1"] for p in self.points]

    def remove(self, *index1: str) -> int:
        """Forget every recorded point with one of these index1 values (as if lost)."""
        wanted = set(index1)
        with self._lock:
            before = len(self.points)
            self.points = [p for p in self.points if p["index1"] not in wanted]
            removed = before - len(self.points)
            self._reload()
        return removed

    def duplicate(self, *index1: str, copies: int = 1) -> int:
        """Record `copies` more of the first point with each of these index1 values."""
        added = 0
        with self._lock:
            for value in index1:
                first = next((p for p in self.points if p["index1"] == value), None)
                if first is not None:
                    self.points.extend(dict(first) for _ in range(copies))
                    added += copies
            self._reload()
        return added

    def keep_one_point_per_index(self) -> int:
        """Forget every point but the first with each index1 value: Cloudflare's data
        counted as the service counts it, one point per requestId. Returns how many."""
        with self._lock:
            seen: set[str] = set()
            kept = [p for p in self.points
                    if p["index1"] not in seen and not seen.add(p["index1"])]
            removed, self.points = len(self.points) - len(kept), kept
            self._reload()
        return removed

    def query(self, sql: str) -> dict[str, Any]:
        """Run SQL as the SQL API would and return its JSON (for tests)."""
        status, _, body = self._sql(sql)
        if status != 200:
            raise AssertionError(body)
        return json.loads(body)

    def _reload(self) -> None:
        with _CHDB_LOCK:
            _run(f"TRUNCATE TABLE {self._database}.`{self.dataset}`")
            self._insert(self.points)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """Under _CHDB_LOCK."""
        if rows:
            lines = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows)
            _run(f"INSERT INTO {self._database}.`{self.dataset}` FORMAT JSONEachRow\n{lines}")

    # -- the two protocols ---------------------------------------------------------------

    def _ingest(self, headers: Any, body: bytes) -> tuple[int, dict[str, Any]]:
        if headers.get("X-Internal-Auth-Key") != self.relay_key:
            return 401, {"success": False, "error": "Unauthorized"}
        if len(body) > MAX_BODY_BYTES:
            return 413, {"success": False, "error": "Request body too large"}
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            return 400, {"success": False, "error": f"Malformed JSON: {e}"}
        if not isinstance(doc, dict):
            return 400, {"success": False, "error": "Body must be a JSON object", "details": []}
        batch_id, points = doc.get("batchId"), doc.get("points")
        if batch_id is not None and not isinstance(batch_id, str):
            return 400, {"success": False, "error": "batchId must be a string", "details": []}
        if not isinstance(points, list):
            return 400, {"success": False, "error": "points must be an array", "details": []}
        if len(points) > MAX_POINTS:
            return 400, {"success": False, "error": f"Too many points: {len(points)}",
                         "details": [{"index": MAX_POINTS, "reason": "over the limit"}]}
        details = [{"index": i, "reason": r} for i, p in enumerate(points)
                   for r in check_point(p)]
        if details:
            bad = len({d["index"] for d in details})
            if not self.report_details:
                details = []
            return 400, {"success": False, "details": details,
                         "error": f"{bad} of {len(points)} points are invalid; nothing was written"}
        now = int(self.clock())
        rows = []
        for p in points:
            blobs = [b or "" for b in (p.get("blobs") or [])]
            doubles = list(p.get("doubles") or [])
            indexes = [x or "" for x in (p.get("indexes") or [])]
            row: dict[str, Any] = {"dataset": self.dataset, "timestamp": now,
                                   "_sample_interval": 1,
                                   "index1": indexes[0] if indexes else ""}
            for i in range(20):
                row[f"blob{i + 1}"] = blobs[i] if i < len(blobs) else ""
                row[f"double{i + 1}"] = float(doubles[i]) if i < len(doubles) else 0.0
            rows.append(row)
        with self._lock:
            with _CHDB_LOCK:
                self._insert(rows)
            self.points.extend(rows)
        return 200, {"success": True, "written": len(rows), "batchId": batch_id}

    def _sql(self, sql: str) -> tuple[int, str, str]:
        """(status, content type, body) as the SQL API answers."""
        self.sql_requests.append(sql)
        match = FORMAT_CLAUSE.search(sql)
        fmt = match.group(1) if match else "JSON"
        if match:
            sql = sql[:match.start()]
        try:
            sql = to_chdb(sql)
        except sqlglot.errors.ParseError as e:
            return 422, "text/plain", f"Input was invalid: {str(e).splitlines()[0]}"
        try:
            with _CHDB_LOCK:
                _run(f"USE {self._database}")
                out = _run(sql, "JSON" if fmt.upper() == "JSON" else fmt)
        except ChdbError as e:
            return 422, "text/plain", f"Input was invalid: {' '.join(str(e).split())[:2000]}"
        if fmt.upper() != "JSON":
            return 200, "text/plain", out
        doc = json.loads(out) if out.strip() else {"meta": [], "data": [], "rows": 0}
        body = {"meta": doc.get("meta", []), "data": doc.get("data", []),
                "rows": doc.get("rows", 0),
                "rows_before_limit_at_least": doc.get("rows_before_limit_at_least",
                                                      doc.get("rows", 0))}
        return 200, "application/json", json.dumps(body)


class _Handler(BaseHTTPRequestHandler):
    standin: StandIn
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's connection reuse is real

    def log_message(self, format: str, *args: Any) -> None:  # quiet in test output
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.standin._lock:
            self.standin._connections.add(self.connection)
            self.standin.connections_opened += 1

    def finish(self) -> None:
        with self.standin._lock:
            self.standin._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (timeout) or died (killed)

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(doc).encode(), "application/json", headers)

    def _failing(self) -> bool:
        """Answers as the current mode says; True when the request was handled so."""
        standin = self.standin
        mode = standin.mode
        if mode == "hang":
            standin._released.wait(standin.hang_limit_s)
            self.close_connection = True
            return True
        if mode == "refuse":  # a kept-alive connection that outlived the listener
            self.close_connection = True
            return True
        if mode == "500":
            self._json(500, {"success": False, "error": "stand-in: internal error"})
            return True
        if mode == "429":
            self._json(429, {"success": False, "error": "stand-in: too many requests"},
                       {"Retry-After": standin.retry_after})
            return True
        return False

    def do_GET(self) -> None:
        if self.path == "/health":
            self._json(200, {"status": "ok"})
        else:
            self._json(404, {"success": False, "error": f"Not found: {self.path}"})

    def do_POST(self) -> None:
        standin = self.standin
        arrived = time.monotonic()
        body = self._body()
        if standin.delay_s:
            time.sleep(standin.delay_s)
        if self.path == "/ingest":
            call = IngestCall(None, arrived)
            with standin._lock:
                standin.calls.append(call)
            if self._failing():
                call.ended = time.monotonic()
                return
            if standin.relay_down:
                call.ended, call.status = time.monotonic(), 503
                self._json(503, {"success": False, "error": "stand-in: relay unavailable"})
                return
            status, doc = standin._ingest(self.headers, body)
            call.ended, call.status = time.monotonic(), status
            call.batch_id = doc.get("batchId") if status == 200 else None
            if status == 200:
                call.indexes = [p.get("indexes", [""])[0] for p in json.loads(body)["points"]]
            self._json(status, doc)
            return
        match = SQL_PATH.match(self.path.split("?")[0])
        if match is None:
            self._json(404, {"success": False, "error": f"Not found: {self.path}"})
            return
        if self._failing():
            return
        if self.headers.get("Authorization") != f"Bearer {standin.api_token}":
            self._json(401, {"success": False,
                             "errors": [{"code": 10000, "message": "Authentication error"}]})
            return
        if match.group(1) != standin.account_id:
            self._json(403, {"success": False,
                             "errors": [{"code": 10000, "message": "Unknown account"}]})
            return
        status, content_type, text = standin._sql(body.decode("utf-8", "replace"))
        self._send(status, text.encode("utf-8"), content_type)
