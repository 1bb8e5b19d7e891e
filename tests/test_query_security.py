"""The local engine only reads, only the dataset, and not for long: the parser's
allow-list first, then a read-only connection with an authorizer, a time limit and a row
cap underneath it, each tested on its own."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from aesql_fixtures import NOW, bulk_log, import_log, make_records

from storage.query.aesql import InvalidQuery, LocalEngine, QueryTimeout

T = "hoox_telemetry"


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return make_records(500)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, records: list[dict]) -> str:
    return import_log(tmp_path_factory.mktemp("security"), records)


@pytest.fixture()
def engine(db: str):
    e = LocalEngine(db, now=lambda: NOW)
    yield e
    e.close()


def _count(db: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]


@pytest.mark.parametrize("sql", [
    f"DELETE FROM {T}", "DELETE FROM events", "UPDATE events SET blob1 = 'x'",
    "INSERT INTO events (request_id) VALUES ('x')", "DROP TABLE events",
    "ATTACH DATABASE ':memory:' AS other", "PRAGMA writable_schema = ON",
    "VACUUM", "SELECT load_extension('/tmp/evil.so')", "SELECT * FROM sqlite_master",
    "SELECT count() FROM events", f"SELECT count() FROM {T}; DELETE FROM events",
    f"SELECT readfile('/etc/passwd') FROM {T}",
])
def test_writes_and_escapes_are_refused_and_change_nothing(engine: LocalEngine, db: str,
                                                           sql: str) -> None:
    before = _count(db)
    with pytest.raises(InvalidQuery):
        engine.query(sql)
    assert _count(db) == before


@pytest.mark.parametrize("sql", [
    "SELECT * FROM sqlite_master", "SELECT payload FROM events",
    "DELETE FROM events", "INSERT INTO events (request_id) VALUES ('x')",
    "ATTACH DATABASE ':memory:' AS other", "PRAGMA query_only = OFF",
    "SELECT load_extension('x')", "SELECT sqlite_version()", "CREATE TABLE x (a)",
])
def test_the_authorizer_blocks_what_the_parser_would(engine: LocalEngine, sql: str) -> None:
    """Defence in depth: even SQL that bypassed the translation cannot do these."""
    engine.query(f"SELECT count() FROM {T}")  # opens the connection
    conn = engine._connection()
    with pytest.raises(sqlite3.DatabaseError, match="not authorized|prohibited"):
        conn.execute(sql).fetchall()


def test_the_connection_is_read_only_underneath(engine: LocalEngine, db: str) -> None:
    engine.query(f"SELECT count() FROM {T}")
    conn = engine._connection()
    conn.set_authorizer(None)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly|read-only|query_only"):
            conn.execute("DELETE FROM events")
        conn.execute("PRAGMA query_only = OFF")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM events")  # mode=ro holds without query_only
    finally:
        conn.execute("PRAGMA query_only = ON")
        conn.set_authorizer(engine._authorize)
    assert _count(db) > 0


def test_a_missing_log_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    engine = LocalEngine(str(path))
    with pytest.raises(sqlite3.OperationalError):
        engine.query(f"SELECT count() FROM {T}")
    assert not path.exists()


def test_an_injection_in_a_param_is_only_a_value(engine: LocalEngine) -> None:
    evil = "x' OR 1=1 --"
    assert engine.query(f"SELECT count() AS n FROM {T} WHERE blob1 = ?", [evil]).rows == \
        [{"n": 0}]
    assert engine.query(f"SELECT count() AS n FROM {T} WHERE blob1 = ? OR blob1 = ?",
                        [evil, "hoox"]).rows[0]["n"] > 0
    assert engine.query("SELECT ? AS s", [evil]).rows == [{"s": evil}]
    assert "OR 1=1" not in (engine.sqlite_sql(f"SELECT count() FROM {T} WHERE blob1 = ?",
                                              [evil]) or "").split("'")[0]


def test_params_bind_in_the_order_of_the_text(engine: LocalEngine,
                                              records: list[dict]) -> None:
    """Independent of ClickHouse: the bound query equals its hand-written literal form
    and a count done in Python."""
    sql = (f"SELECT blob1, count() AS n FROM {T} WHERE double1 > ? AND blob2 IN (?, ?) "
           "GROUP BY blob1 HAVING n > ? ORDER BY blob1 LIMIT ?")
    bound = engine.query(sql, [20.5, "/webhook", "/api/trade", 3, 2]).rows
    literal = engine.query(f"SELECT blob1, count() AS n FROM {T} WHERE double1 > 20.5 AND "
                           "blob2 IN ('/webhook', '/api/trade') GROUP BY blob1 HAVING n > 3 "
                           "ORDER BY blob1 LIMIT 2").rows
    assert bound == literal and len(bound) == 2
    counts: dict[str, int] = {}
    for r in records:
        p = r["payload"]
        if p["latencyMs"] > 20.5 and p["endpoint"] in ("/webhook", "/api/trade"):
            counts[p["worker"]] = counts.get(p["worker"], 0) + 1
    expected = [{"blob1": w, "n": n} for w, n in sorted(counts.items()) if n > 3][:2]
    assert bound == expected


def test_the_row_cap_truncates(db: str) -> None:
    engine = LocalEngine(db, now=lambda: NOW, max_rows=7)
    try:
        result = engine.query(f"SELECT index1 FROM {T} ORDER BY index1")
        assert len(result.rows) == 7 and result.truncated
        small = engine.query(f"SELECT blob1 FROM {T} GROUP BY blob1 ORDER BY blob1 LIMIT 5")
        assert len(small.rows) == 5 and not small.truncated
    finally:
        engine.close()


def test_a_long_query_is_stopped_at_the_time_limit(tmp_path: Path) -> None:
    db = bulk_log(tmp_path / "big.db", 150_000)
    engine = LocalEngine(db, now=lambda: NOW, timeout_ms=100)
    # Python functions on every row of every group: seconds here, minutes on a big log.
    slow = (f"SELECT blob1, topK(5)(format('{{}} {{}} {{}}', blob2, formatDateTime(timestamp, "
            f"'%Y-%m-%d %H:%i:%S %W %M'), upperUTF8(index1))) AS t FROM {T} GROUP BY blob1")
    try:
        started = time.monotonic()
        with pytest.raises(QueryTimeout) as caught:
            engine.query(slow)
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, elapsed
        message = str(caught.value)
        assert "100 ms" in message and "ANALYTICS_QUERY_TIMEOUT_MS" in message
        # the engine is usable afterwards, and the limit is per query (a query that reads
        # one row: a scan of the whole log can take 100 ms on a busy machine)
        assert engine.query(f"SELECT blob1 FROM {T} LIMIT 1").rows
    finally:
        engine.close()


# -- the same SQL through the HTTP routes ------------------------------------------------------

HOSTILE = [
    f"DELETE FROM {T}", "DELETE FROM events", "UPDATE events SET blob1 = 'x'",
    "INSERT INTO events (request_id) VALUES ('x')", "DROP TABLE events",
    "ATTACH DATABASE ':memory:' AS other", "PRAGMA writable_schema = ON", "VACUUM",
    "SELECT load_extension('/tmp/evil.so')", "SELECT * FROM sqlite_master",
    "SELECT count() FROM events", f"SELECT count() FROM {T}; DELETE FROM events",
    f"SELECT readfile('/etc/passwd') FROM {T}", f"SELECT payload FROM {T}",
    f"SELECT blob1 FROM {T} WHERE blob1 = 'x' UNION ALL SELECT payload FROM events",
    f"SELECT toDateTime(timestamp, '../../../etc/passwd') FROM {T}",
    f"SELECT count() FROM {T} -- ; DROP TABLE events",
    f"SELECT count() FROM {T} FORMAT CSV",
]


@pytest.mark.parametrize("sql", HOSTILE)
def test_hostile_sql_gets_the_same_answer_from_the_sql_api_route_as_from_query(
        client, db_path: Path, sql: str) -> None:  # type: ignore[no-untyped-def]
    from conftest import KEY, api_call

    assert client.simulate_post("/track/api-call", json=api_call("kept")).status_code == 200
    via_query = client.simulate_post("/query", json={"query": sql, "source": "local"})
    via_api = client.simulate_post("/client/v4/accounts/a/analytics_engine/sql",
                                   body=sql.encode(),
                                   headers={"Authorization": f"Bearer {KEY}"})
    if via_query.status_code == 200:  # harmless after all: the same rows either way
        assert via_api.status_code == 200
        from storage.query.cloudflare import coerce  # 64-bit integers come quoted, as from Cloudflare

        types = {m["name"]: m["type"] for m in via_api.json["meta"]}
        assert [{k: coerce(types[k], v) for k, v in row.items()}
                for row in via_api.json["data"]] == via_query.json["results"]
    else:
        assert (via_query.status_code, via_api.status_code) == (422, 422)
        assert via_api.text == via_query.json["error"]
    assert _count(str(db_path)) == 1
