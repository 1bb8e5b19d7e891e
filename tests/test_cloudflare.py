"""The client of Cloudflare's SQL API (SPEC §2), against the stand-in: real HTTP on
loopback, real ClickHouse answering."""

from __future__ import annotations

import time

import httpx
import pytest
from standin import StandIn

from storage.intake.datapoint import DataPoint
from storage.query.aesql import InvalidQuery, ParamsMismatch
from storage.query.cloudflare import (CloudflareBadResponse, CloudflareQueryRejected, CloudflareSQL,
                                      CloudflareTimeout, CloudflareUnreachable, coerce)
from storage.replay.sink import RelaySink


def sql_api(standin: StandIn, http: httpx.Client, *, token: str | None = None,
            timeout_ms: int = 1000, max_rows: int = 100) -> CloudflareSQL:
    return CloudflareSQL(api_base=standin.api_base, account_id=standin.account_id,
                         api_token=token or standin.api_token, dataset=standin.dataset,
                         timeout_ms=timeout_ms, max_rows=max_rows, http=http)


def write(standin: StandIn, http: httpx.Client, rows: list[tuple[str, str, float]]) -> None:
    """Points through the relay protocol, as replay writes them."""
    points = [DataPoint((worker, "/webhook", "1"), (latency, 1_764_000_000.0), (rid,))
              for rid, worker, latency in rows]
    RelaySink(standin.relay_url, standin.relay_key, http=http, timeout_ms=1000,
              clock=time.time).send(points, "t")


@pytest.fixture
def filled(standin: StandIn, http: httpx.Client) -> StandIn:
    write(standin, http, [("a", "trade-worker", 10.5), ("b", "trade-worker", 20.25),
                          ("c", "hoox", 1.0), ("d", "o'brien", 2.0)])
    return standin


def test_query_posts_the_sql_with_the_bearer_token_and_returns_rows(
        filled: StandIn, http: httpx.Client) -> None:
    result = sql_api(filled, http).query(
        "SELECT blob1 AS worker, count() AS calls, sum(double1) AS total FROM hoox_telemetry"
        " GROUP BY worker ORDER BY worker")
    assert result.rows == [{"worker": "hoox", "calls": 1, "total": 1.0},
                           {"worker": "o'brien", "calls": 1, "total": 2.0},
                           {"worker": "trade-worker", "calls": 2, "total": 30.75}]
    assert result.meta == [{"name": "worker", "type": "String"},
                           {"name": "calls", "type": "UInt64"},
                           {"name": "total", "type": "Float64"}]
    assert not result.truncated
    assert filled.sql_requests[-1].startswith("SELECT blob1 AS worker")


def test_64_bit_integers_come_back_as_json_numbers(filled: StandIn, http: httpx.Client) -> None:
    result = sql_api(filled, http).query(
        "SELECT count() AS n, sum(_sample_interval) AS events, toUInt32(7) AS small"
        " FROM hoox_telemetry")
    assert result.rows == [{"n": 4, "events": 4, "small": 7}]
    assert all(type(v) is int for v in result.rows[0].values())


def test_coerce_understands_wrapped_and_array_types() -> None:
    assert coerce("UInt64", "18446744073709551615") == 18446744073709551615
    assert coerce("Nullable(Int64)", "-5") == -5
    assert coerce("Nullable(Int64)", None) is None
    assert coerce("Array(UInt64)", ["1", "2"]) == [1, 2]
    assert coerce("String", "12") == "12"  # strings stay strings
    assert coerce("Float64", 1.5) == 1.5


def test_params_are_bound_as_literals_and_never_pasted(
        filled: StandIn, http: httpx.Client) -> None:
    api = sql_api(filled, http)
    sql = "SELECT count() AS n FROM hoox_telemetry WHERE blob1 = ?"
    assert api.query(sql, ["o'brien"]).rows == [{"n": 1}]
    assert api.query(sql, ["x' OR 1=1 OR blob1 = '"]).rows == [{"n": 0}]
    assert api.query("SELECT count() AS n FROM hoox_telemetry WHERE double1 > ? AND blob1 IN"
                     " (?, ?)", [5, "trade-worker", "hoox"]).rows == [{"n": 2}]


def test_a_params_mismatch_or_sql_outside_the_dialect_never_calls_out(
        filled: StandIn, http: httpx.Client) -> None:
    api = sql_api(filled, http)
    with pytest.raises(ParamsMismatch):
        api.query("SELECT count() FROM hoox_telemetry WHERE blob1 = ?", [])
    with pytest.raises(InvalidQuery):
        api.query("SELECT * FROM hoox_telemetry JOIN other USING (index1)")
    assert filled.sql_requests == []


def test_sql_cloudflare_refuses_is_rejected_with_its_message(
        filled: StandIn, http: httpx.Client) -> None:
    with pytest.raises(CloudflareQueryRejected) as caught:
        # passes the allow-list; ClickHouse refuses it when it runs (division by zero)
        sql_api(filled, http).query("SELECT intDiv(double1, 0) AS x FROM hoox_telemetry")
    assert caught.value.status == 422
    # Analytics Engine's prefix, then ClickHouse's reason as it gave it
    assert caught.value.message.startswith("Input was invalid: ")
    assert "Division by zero" in caught.value.message, caught.value.message
    assert "(ILLEGAL_DIVISION)" in caught.value.message, caught.value.message


@pytest.mark.parametrize("mode, error, status", [
    ("refuse", CloudflareUnreachable, 503),
    ("hang", CloudflareTimeout, 504),
    ("500", CloudflareBadResponse, 502),
    ("429", CloudflareUnreachable, 503),
])
def test_cloudflare_failures_are_errors_with_a_gateway_status(
        standin: StandIn, http: httpx.Client, mode: str, error: type, status: int) -> None:
    standin.set_mode(mode, retry_after="9")
    started = time.monotonic()
    with pytest.raises(error) as caught:
        sql_api(standin, http, timeout_ms=300).query("SELECT count() FROM hoox_telemetry")
    assert caught.value.status == status
    assert time.monotonic() - started < 2.0  # bounded by the timeout, even when hanging
    if mode == "429":
        assert caught.value.retry_after == "9"


def test_a_wrong_token_says_which_settings_to_check(standin: StandIn,
                                                    http: httpx.Client) -> None:
    with pytest.raises(CloudflareBadResponse, match="CLOUDFLARE_API_TOKEN"):
        sql_api(standin, http, token="wrong").query("SELECT count() FROM hoox_telemetry")


def test_connections_are_reused_across_queries(filled: StandIn) -> None:
    before = filled.connections_opened
    with httpx.Client() as fresh:
        api = sql_api(filled, fresh)
        for _ in range(5):
            api.query("SELECT count() AS n FROM hoox_telemetry")
    assert filled.connections_opened - before == 1


def test_rows_beyond_the_cap_are_cut_and_marked_truncated(
        filled: StandIn, http: httpx.Client) -> None:
    result = sql_api(filled, http, max_rows=3).query(
        "SELECT index1 FROM hoox_telemetry ORDER BY index1")
    assert [r["index1"] for r in result.rows] == ["a", "b", "c"] and result.truncated


def test_quantile_weighted_is_answered(filled: StandIn, http: httpx.Client) -> None:
    # Analytics Engine's spelling; the stand-in runs it as ClickHouse's.
    result = sql_api(filled, http).query(
        "SELECT quantileWeighted(0.5, double1, _sample_interval) AS p50 FROM hoox_telemetry")
    assert result.rows == [{"p50": 2.0}]

