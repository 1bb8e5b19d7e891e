"""An answer's bytes are capped (ANALYTICS_QUERY_MAX_ANSWER_BYTES, SPEC §3.3): a query
whose answer would pass the cap gets a 422 that names it, on /query and on the SQL API
route, in every format, and the cap is the body's exact size."""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest

from aesql_fixtures import bulk_log
from conftest import KEY, assert_error
from storage.config import Config

SQL_API = "/client/v4/accounts/any/analytics_engine/sql"
ROWS = "SELECT index1, blob1, blob2, double1 FROM hoox_telemetry ORDER BY index1 LIMIT 300"


@pytest.fixture
def log_of_3000(db_path: Path) -> Path:
    bulk_log(db_path, 3000)
    return db_path


def client_capped(make_client, config: Config, cap: int) -> falcon.testing.TestClient:
    return make_client(config.replace(query_max_answer_bytes=cap))


def body_of(client: falcon.testing.TestClient, sql: str) -> bytes:
    result = client.simulate_post("/query", json={"query": sql, "source": "local"})
    assert result.status_code == 200, result.text
    return result.content


def test_the_cap_is_eight_mib_unless_set() -> None:
    assert Config.from_env({}).query_max_answer_bytes == 8 * 1024 * 1024
    assert Config.from_env({"ANALYTICS_QUERY_MAX_ANSWER_BYTES": "1000"}
                           ).query_max_answer_bytes == 1000


def test_an_answer_over_the_cap_is_a_422_that_names_it(make_client, config, log_of_3000):
    client = client_capped(make_client, config, 20_000)
    body = assert_error(client.simulate_post("/query", json={
        "query": "SELECT * FROM hoox_telemetry", "source": "local"}), 422,
        "ANALYTICS_QUERY_MAX_ANSWER_BYTES", "20000 bytes")
    assert body["source"] == "local"
    # a smaller question on the same service is answered
    assert len(body_of(client, "SELECT count() AS n FROM hoox_telemetry")) < 20_000


def test_the_sql_api_route_refuses_it_as_analytics_engine_refuses_input(
        make_client, config, log_of_3000):
    client = client_capped(make_client, config, 20_000)
    result = client.simulate_post(SQL_API, body=b"SELECT * FROM hoox_telemetry",
                                  headers={"Authorization": f"Bearer {KEY}"})
    assert result.status_code == 422
    assert result.text.startswith("Input was invalid: ")
    assert "ANALYTICS_QUERY_MAX_ANSWER_BYTES" in result.text


@pytest.mark.parametrize("fmt", ["", " FORMAT JSONEachRow", " FORMAT TabSeparated"])
def test_the_cap_is_the_bodys_exact_size_in_every_format(make_client, config, log_of_3000,
                                                         fmt):
    size = len(body_of(make_client(config), ROWS + fmt))
    assert len(body_of(client_capped(make_client, config, size), ROWS + fmt)) == size
    result = client_capped(make_client, config, size - 1).simulate_post(
        "/query", json={"query": ROWS + fmt, "source": "local"})
    assert_error(result, 422, f"{size - 1} bytes")
