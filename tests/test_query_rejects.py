"""What Analytics Engine rejects is rejected here too: InvalidQuery (HTTP 422) with a
message in Analytics Engine's style that names the construct; a params mismatch is
ParamsMismatch (HTTP 400). The same checks guard the text sent to Cloudflare."""

from __future__ import annotations

import pytest
import sqlglot
from aesql_fixtures import NOW, UNTIMED_MS, import_log, make_records
from sqlglot import exp

from storage.query.aesql import InvalidQuery, LocalEngine, ParamsMismatch, to_clickhouse
from storage.query.aesql.dialect import NODES, _check

pytestmark = pytest.mark.untimed  # beside the server tests (test.sh)

T = "hoox_telemetry"

PREFIX = "Input was invalid: "

REJECTED = [
    # (query, a fragment the reason must contain: the words after PREFIX, which every
    # message has, and in their case, so that a short fragment cannot match the prefix)
    (f"SELECT a.blob1 FROM {T} a JOIN {T} b ON a.index1 = b.index1", "JOIN"),
    (f"SELECT blob1 FROM {T} INNER JOIN other USING (index1)", "JOIN"),
    (f"SELECT blob1 FROM {T} UNION ALL SELECT blob2 FROM {T}", "UNION"),
    (f"WITH x AS (SELECT blob1 FROM {T}) SELECT * FROM x", "WITH"),
    (f"SELECT CASE WHEN double1 > 1 THEN 'a' ELSE 'b' END FROM {T}", "CASE WHEN"),
    (f"SELECT multiIf(double1 > 1, 'a', 'b') FROM {T}", "multiIf"),
    (f"SELECT count(*) FROM {T}", "count(*)"),
    (f"SELECT count() FROM {T}; SELECT 1", "one statement"),
    (f"SELECT 1; DELETE FROM {T}", "one statement"),
    (f"DELETE FROM {T} WHERE 1", "DELETE"),
    (f"INSERT INTO {T} (blob1) VALUES ('x')", "INSERT"),
    (f"DROP TABLE {T}", "DROP"),
    ("CREATE TABLE t (a Int32) ENGINE = Memory", "CREATE"),
    ("ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH"),
    ("PRAGMA table_info(events)", "PRAGMA"),
    ("SELECT count() FROM events", "unknown table events"),
    ("SELECT count() FROM datapoints", "unknown table datapoints"),
    ("SELECT name FROM sqlite_master", "unknown table sqlite_master"),
    (f"SELECT count() FROM other.{T}", "unknown table"),
    (f"SELECT sqlite_version() FROM {T}", "unknown function sqlite_version"),
    (f"SELECT load_extension('x') FROM {T}", "unknown function load_extension"),
    (f"SELECT quantile(0.5)(double1) FROM {T}", "quantile"),
    (f"SELECT concat(blob1, blob2) FROM {T}", "unknown function CONCAT"),
    (f"SELECT toDate(timestamp) FROM {T}", "unknown function toDate"),
    (f"SELECT payload FROM {T}", "unknown column payload"),
    (f"SELECT received_ms FROM {T}", "unknown column received_ms"),
    (f"SELECT seq FROM {T}", "unknown column seq"),
    (f"SELECT DISTINCT blob1 FROM {T}", "DISTINCT"),
    (f"SELECT count() OVER () FROM {T}", "OVER"),
    (f"SELECT blob1 FROM {T} FORMAT CSV", "FORMAT CSV"),
    ("SHOW DATABASES", "SHOW DATABASES"),
    (f"SELECT blob1 IS TRUE FROM {T}", "IS TRUE is not supported"),
    # ClickHouse's bit functions take integers only: "Illegal types DateTime and DateTime"
    (f"SELECT bitAnd(timestamp, timestamp) FROM {T}", "bit functions need integers"),
    (f"SELECT bitNot(timestamp) FROM {T}", "bit functions need integers, got DateTime"),
    (f"SELECT bitHammingDistance(timestamp, 1) FROM {T}", "bit functions need integers"),
    # a column outside every aggregate and every GROUP BY key, as ClickHouse refuses it
    (f"SELECT blob1, count() FROM {T}", "blob1 is not under an aggregate function"),
    (f"SELECT blob1 AS w, count() AS n FROM {T} GROUP BY w ORDER BY blob2",
     "blob2 is not under an aggregate function"),
    (f"SELECT blob1, count() AS n FROM {T} GROUP BY blob1 HAVING double1 > 1",
     "double1 is not under an aggregate function"),
    (f"SELECT toStartOfHour(timestamp) AS h, timestamp FROM {T} GROUP BY h",
     "timestamp is not under an aggregate function"),
    # a key that differs only in the case of a string is another key
    (f"SELECT blob1 = 'A' AS k, count() AS n FROM {T} GROUP BY blob1 = 'a'",
     "blob1 is not under an aggregate function"),
    # a call in a syntax sqlglot reserves for another form is refused for its name
    (f"SELECT QUANTILE(double1, 0.95) FROM {T}", "unknown function QUANTILE"),
    (f"SELECT blob1 FROM {T} WHERE index1 IN (SELECT index1 FROM {T})",
     "IN (subquery) is not supported"),
    (f"SELECT toStartOfInterval(timestamp, INTERVAL '1' FORTNIGHT) FROM {T}", "INTERVAL"),
    ("SELEC count() FROM hoox_telemetry",
     "only SELECT and SHOW statements are supported, not SELEC"),
    ("", "empty"),
    # names ClickHouse registers case-sensitively, in another case
    (f"SELECT COUNTIF(blob3 = '1') FROM {T}", "did you mean countIf"),
    (f"SELECT TOYEAR(timestamp) FROM {T}", "did you mean toYear"),
    (f"SELECT FORMAT('{{}}', blob1) FROM {T}", "FORMAT"),
    # time zones: only real IANA names, and only as strings
    (f"SELECT toDateTime(timestamp, 'Mars/Olympus') FROM {T}", "unknown time zone 'Mars/Olympus'"),
    (f"SELECT toHour(timestamp, blob1) FROM {T}", "time zone must be a string"),
    (f"SELECT formatDateTime(timestamp, '%Y', '../../etc/passwd') FROM {T}", "unknown time zone"),
    (f"SELECT blob1 FROM {T} FORMAT Pretty", "FORMAT Pretty"),
    (f"SELECT blob1 FROM {T} FORMAT CSVWithNames", "FORMAT CSVWithNames"),
]


@pytest.mark.parametrize("sql, message", [
    ("SELECT blob1 FROM hoox_telemetry WHERE",
     "syntax error at line 1, column 38 (near 'WHERE'): expected a condition after WHERE"),
    ("SELECT blob1\nFROM hoox_telemetry\nWHERE blob1 = 'x' AND",
     "syntax error at line 3, column 21 (near 'AND'): expected an expression after AND"),
    ("SELECT count( FROM hoox_telemetry", "syntax error at line 1, column 33 (near 'hoox_telemetry'): expected )"),
    ("SELECT blob1 FROM hoox_telemetry WHERE blob1 = 'open", "syntax error at line 1, "
     "column 48: unterminated string (no closing ')"),
    ("SELECT double1 + FROM hoox_telemetry", "expected an expression after +"),
])
def test_syntax_errors_are_in_sql_terms_with_line_and_column(sql: str, message: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        to_clickhouse(sql)
    text = str(caught.value)
    assert text.startswith("Input was invalid: syntax error at line ") and message in text, text
    assert "sqlglot" not in text and "<class" not in text


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory):
    db = import_log(tmp_path_factory.mktemp("rejects"), make_records(200))
    e = LocalEngine(db, now=lambda: NOW, timeout_ms=UNTIMED_MS)
    yield e
    e.close()


@pytest.mark.parametrize("sql,fragment", REJECTED, ids=[f for _, f in REJECTED])
def test_rejected_locally_with_a_named_reason(engine: LocalEngine, sql: str,
                                              fragment: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        engine.query(sql)
    message = str(caught.value)
    assert message.startswith(PREFIX)
    assert fragment in message.removeprefix(PREFIX), message
    assert "\n" not in message


@pytest.mark.parametrize("sql,fragment", REJECTED, ids=[f for _, f in REJECTED])
def test_rejected_before_reaching_cloudflare(sql: str, fragment: str) -> None:
    with pytest.raises(InvalidQuery) as caught:
        to_clickhouse(sql)
    message = str(caught.value)
    assert message.startswith(PREFIX)
    assert fragment in message.removeprefix(PREFIX), message


@pytest.mark.parametrize("sql,params", [
    (f"SELECT count() FROM {T} WHERE blob1 = ?", []),
    (f"SELECT count() FROM {T} WHERE blob1 = ?", ["a", "b"]),
    (f"SELECT count() FROM {T}", ["a"]),
    (f"SELECT count() FROM {T} WHERE blob1 = ? AND blob2 = ?", ["a"]),
])
def test_params_count_mismatch_is_a_400(engine: LocalEngine, sql: str, params: list) -> None:
    with pytest.raises(ParamsMismatch) as caught:
        engine.query(sql, params)
    assert "placeholder" in str(caught.value)
    with pytest.raises(ParamsMismatch):
        to_clickhouse(sql, params)


@pytest.mark.parametrize("param", [["a"], {"a": 1}, float("nan"), float("inf"), b"x"])
def test_params_of_unsupported_types_are_a_400(engine: LocalEngine, param: object) -> None:
    with pytest.raises(ParamsMismatch):
        engine.query(f"SELECT count() FROM {T} WHERE blob1 = ?", [param])


def test_question_mark_inside_a_string_is_not_a_placeholder(engine: LocalEngine) -> None:
    result = engine.query(f"SELECT count() AS n FROM {T} WHERE blob1 = 'why?'")
    assert result.rows == [{"n": 0}]


def test_named_placeholders_are_rejected(engine: LocalEngine) -> None:
    with pytest.raises(InvalidQuery, match="placeholder"):
        engine.query(f"SELECT count() FROM {T} WHERE blob1 = {{__ae_param_0:String}}")


def test_show_statements_answer_like_analytics_engine(engine: LocalEngine) -> None:
    assert engine.query("SHOW TABLES").rows == [{"dataset": T}]
    assert engine.query("SHOW TABLES FORMAT JSON").rows == [{"dataset": T}]
    assert engine.query("SHOW TIMEZONE").rows == [{"timezone": "Etc/UTC"}]
    zones = [r["name"] for r in engine.query("SHOW TIMEZONES").rows]
    assert "UTC" in zones and "Europe/Berlin" in zones
    assert to_clickhouse("show tables") == "SHOW TABLES FORMAT JSON"


# -- the allow-list holds for what sqlglot may parse tomorrow ------------------------------

def _tree(sql: str) -> exp.Expression:
    return sqlglot.parse_one(sql, read="clickhouse")


@pytest.mark.parametrize("node_type", sorted(NODES, key=lambda t: t.__name__),
                         ids=lambda t: t.__name__)
def test_an_arg_the_translator_does_not_read_is_refused_on_every_allowed_node(
        node_type: type) -> None:
    """A new clause of a new sqlglot version arrives as a new arg of a known node: it is
    refused, named, rather than dropped."""
    tree = _tree(f"SELECT blob1 AS w, count() AS n FROM {T} AS t WHERE t.double1 > 1 "
                 "AND blob2 IN ('a') AND blob2 LIKE 'x' AND blob3 ILIKE 'y' AND double1 "
                 "BETWEEN 1 AND 2 AND NOT (blob1 = 'z') AND -double1 < 0 AND "
                 "timestamp > now() - INTERVAL 1 DAY AND extract(HOUR FROM timestamp) = 1 "
                 "AND TRUE AND blob4 != NULL AND blob5 IS NOT NULL AND double1 * 2 / 3 % 4 + 1 >= 0 AND "
                 "count(DISTINCT blob2) <= 1 OR 1 <> 2 GROUP BY w HAVING n > 0 ORDER BY n "
                 "LIMIT 2 OFFSET 1 FORMAT JSON")
    tree.set("from_", exp.From(this=exp.Subquery(
        this=_tree(f"SELECT * FROM {T}"), alias=exp.TableAlias(this=exp.to_identifier("s")))))
    nodes = [n for n in tree.walk() if type(n) is node_type]
    if not nodes:  # the FROM replaced above took the Table with it
        nodes = [n for n in _tree(f"SELECT blob1 FROM {T}").walk() if type(n) is node_type]
        tree = nodes[0].root()
    _check(tree)  # the tree as parsed passes
    nodes[0].args["tomorrows_clause"] = exp.column("blob1")
    with pytest.raises(InvalidQuery, match="TOMORROWS_CLAUSE"):
        _check(tree)


def test_a_node_type_the_translator_does_not_handle_is_refused_even_as_a_subclass() -> None:
    class TomorrowsColumn(exp.Column):  # what a new sqlglot version might parse into
        pass

    tree = _tree(f"SELECT blob1 FROM {T}")
    column = next(n for n in tree.walk() if type(n) is exp.Column)
    column.replace(TomorrowsColumn(this=exp.to_identifier("blob1")))
    with pytest.raises(InvalidQuery, match="TomorrowsColumn"):
        _check(tree)


def test_a_function_flag_that_is_not_known_to_mean_nothing_is_refused() -> None:
    tree = _tree(f"SELECT lower(blob1) FROM {T}")
    lower = next(n for n in tree.walk() if isinstance(n, exp.Lower))
    lower.args["tomorrows_flag"] = True
    with pytest.raises(InvalidQuery, match="tomorrows_flag"):
        _check(tree)
