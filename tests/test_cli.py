"""The command line: help, query, status, errors, progress (export, import and audit have
their own files)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import CliRunner
from conftest import KEY
from standin import StandIn

from cli import COMMANDS, main
from storage.intake import datapoint
from storage.intake.events import Event
from storage.log import EventLog
from storage.replay import Replayer
from storage.replay.sink import RelaySink, StdoutSink

T0 = 1_764_000_000_000  # 2025-11-24T16:00:00Z
NOW = T0 / 1000 + 600


def event(request_id: str, received_ms: int, worker: str = "trade-worker",
          latency: float = 24.5) -> Event:
    body = {"worker": worker, "endpoint": "/webhook", "latencyMs": latency, "success": True}
    return Event(request_id, "api-call", received_ms, body,
                 datapoint.api_call(request_id, received_ms, body))


def invoke(*args: str, env: dict[str, str] | None = None, **obj: Any) -> Any:
    return CliRunner().invoke(main, list(args), env=env, obj={"clock": lambda: NOW, **obj})


@pytest.fixture
def seeded(db_path: Path) -> Path:
    log = EventLog(db_path)
    log.append([event("a-1", T0, "hoox", 10.0), event("a-2", T0 + 1000, "hoox", 30.0),
                event("a-3", T0 + 2000, "trade-worker", 5.5)])
    log.close()
    return db_path


def test_every_command_is_listed_once_in_the_help_sections():
    from cli import SECTIONS

    listed = [name for _title, names in SECTIONS for name in names]
    assert sorted(listed) == sorted(COMMANDS)
    result = CliRunner().invoke(main, ["--help"])
    for name in COMMANDS:
        assert re.search(rf"^  {re.escape(name)}\s", result.stdout, flags=re.M), name


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert f"analytics-worker {command}" in result.stdout


# -- query ---------------------------------------------------------------------------------

QUERY = ("SELECT blob1 AS worker, count() AS calls, sum(double1) AS latency"
         " FROM hoox_telemetry GROUP BY worker ORDER BY worker")


def test_query_prints_a_table_from_the_local_log(seeded):
    result = invoke("query", "--db", str(seeded), "--source", "local", QUERY)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "worker        calls  latency",
        "------------  -----  -------",
        "hoox              2     40.0",
        "trade-worker      1      5.5",
    ]
    assert result.stderr == "2 row(s) from local\n"


def test_query_json_has_the_shape_of_the_http_answer(seeded):
    result = invoke("query", "--db", str(seeded), "--json", QUERY)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["success"] is True and body["source"] == "local"
    assert body["rows"] == 2
    assert [m["name"] for m in body["meta"]] == ["worker", "calls", "latency"]
    assert body["results"][0] == {"worker": "hoox", "calls": 2, "latency": 40.0}


def test_query_binds_params_in_order_reading_json_values(seeded):
    sql = ("SELECT index1 FROM hoox_telemetry WHERE blob1 = ? AND double1 > ?"
           " ORDER BY index1")
    result = invoke("query", "--db", str(seeded), "--json", sql, "-p", "hoox", "-p", "15")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"] == [{"index1": "a-2"}]


def test_query_with_a_wrong_number_of_params_fails_clearly(seeded):
    result = invoke("query", "--db", str(seeded), "SELECT index1 FROM hoox_telemetry"
                    " WHERE blob1 = ?")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.output


def test_query_outside_the_dialect_fails_clearly(seeded):
    result = invoke("query", "--db", str(seeded), "DELETE FROM hoox_telemetry")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ")
    assert "Traceback" not in result.output


def test_query_refuses_with_the_message_of_the_http_routes(seeded, client):
    sql = "SELECT CASE WHEN double1 > 1 THEN 'a' ELSE 'b' END FROM hoox_telemetry"
    result = invoke("query", "--db", str(seeded), "--source", "local", sql)
    # the same log through the real app: /query, and the SQL API route
    via_query = client.simulate_post("/query", json={"query": sql, "source": "local"})
    via_sql_api = client.simulate_post(
        "/client/v4/accounts/any-account/analytics_engine/sql", body=sql.encode(),
        headers={"Authorization": f"Bearer {KEY}"})
    assert via_query.status_code == 422 and via_sql_api.status_code == 422
    expected = via_query.json["error"]
    assert expected.startswith("Input was invalid: CASE WHEN"), expected
    assert via_sql_api.text == expected
    assert result.exit_code == 1 and result.stderr.strip() == f"Error: {expected}"


def test_query_format_clause_prints_that_body(seeded):
    sql = ("SELECT blob1 AS worker, count() AS n FROM hoox_telemetry GROUP BY worker "
           "ORDER BY worker FORMAT {}")
    tsv = invoke("query", "--db", str(seeded), "--source", "local", sql.format("TabSeparated"))
    assert tsv.exit_code == 0, tsv.output
    lines = tsv.stdout.splitlines()
    assert lines and all(len(line.split("\t")) == 2 for line in lines)
    each = invoke("query", "--db", str(seeded), "--source", "local", sql.format("JSONEachRow"))
    assert [json.loads(line)["worker"] for line in each.stdout.splitlines()] == \
        [line.split("\t")[0] for line in lines]


def test_query_from_cloudflare_when_it_is_not_configured_says_what_to_set(seeded):
    result = invoke("query", "--db", str(seeded), "--source", "cloudflare", QUERY,
                    env={"CLOUDFLARE_API_TOKEN": "", "CLOUDFLARE_ACCOUNT_ID": ""})
    assert result.exit_code == 1
    assert "CLOUDFLARE_API_TOKEN" in result.stderr


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as s:
        yield s


def test_query_from_cloudflare_reads_the_replayed_points(seeded, standin):
    with httpx.Client() as http:
        log = EventLog(seeded)
        sink = RelaySink(standin.relay_url, standin.relay_key, http=http, timeout_ms=5000,
                         clock=standin.clock)
        assert Replayer(log, sink).drain(sleep=lambda s: None).drained
        log.close()
    env = {**standin.env(), "ANALYTICS_DB": str(seeded)}
    result = invoke("query", "--source", "cloudflare", "--json", QUERY, env=env)
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["source"] == "cloudflare"
    assert body["results"] == [{"worker": "hoox", "calls": 2, "latency": 40.0},
                               {"worker": "trade-worker", "calls": 1, "latency": 5.5}]


# -- status --------------------------------------------------------------------------------

def test_status_reports_the_log_and_the_replay_backlog(seeded):
    result = invoke("status", "--db", str(seeded), "--json", "--offline",
                    env={"ANALYTICS_SINK": "stdout"})
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["events"] == 3
    assert body["database"] == str(seeded)
    assert body["replay"]["sink"] == "stdout"
    assert body["replay"]["backlog"]["events"] == 3
    assert body["replay"]["backlog"]["oldestReceivedAt"] == "2025-11-24T16:00:00.000Z"
    assert body["replay"]["backlog"]["oldestAgeSeconds"] == 600.0
    assert body["cloudflare"]["reachable"] is None


def test_status_after_a_replay_shows_an_empty_backlog_in_text(seeded):
    log = EventLog(seeded)
    Replayer(log, StdoutSink(io.StringIO()), clock=lambda: NOW).drain(sleep=lambda s: None)
    log.close()
    result = invoke("status", "--db", str(seeded), "--offline",
                    env={"ANALYTICS_SINK": "stdout"})
    assert result.exit_code == 0, result.output
    assert "3 events" in result.stdout
    assert "backlog 0 event(s)" in result.stdout
    assert "replayed through seq 3" in result.stdout
    assert "last success 2025-11-24T16:10:00.000Z" in result.stdout


def test_status_asks_cloudflare_whether_it_answers(seeded, standin):
    env = {**standin.env(), "ANALYTICS_DB": str(seeded)}
    body = json.loads(invoke("status", "--json", env=env).stdout)
    assert body["cloudflare"] == {"configured": True, "reachable": True, "error": None}
    standin.set_mode("500")
    body = json.loads(invoke("status", "--json", env=env).stdout)
    assert body["cloudflare"]["reachable"] is False
    assert "500" in body["cloudflare"]["error"]


# -- shared behaviour ----------------------------------------------------------------------

def test_a_bad_setting_in_the_environment_is_a_clear_error(db_path):
    result = invoke("status", "--db", str(db_path), env={"ANALYTICS_SYNC": "sometimes"})
    assert result.exit_code == 1
    assert "ANALYTICS_SYNC='sometimes'" in result.stderr


def test_a_log_that_cannot_be_opened_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    result = invoke("export", "--db", str(tmp_path / "file" / "analytics.db"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.output


def test_progress_is_shown_on_a_terminal_and_not_otherwise(seeded, tmp_path):
    out = tmp_path / "x.ndjson"
    quiet = invoke("export", "--db", str(seeded), "-o", str(out))
    assert quiet.stderr == "exported 3 event(s)\n"
    shown = invoke("export", "--db", str(seeded), "-o", str(out), interactive=True)
    assert "exporting" in shown.stderr
    imported = invoke("import", "--db", str(tmp_path / "b.db"), str(out), interactive=True)
    assert "importing" in imported.stderr
    resent = invoke("replay", "--db", str(seeded), "--since", "2025-11-24T16:00:00Z",
                    env={"ANALYTICS_SINK": "stdout"}, interactive=True)
    assert resent.exit_code == 0, resent.output
    assert "re-sending" in resent.stderr
    assert len(resent.stdout.splitlines()) == 3
    quiet_resend = invoke("replay", "--db", str(seeded), "--since", "2025-11-24T16:00:00Z",
                          env={"ANALYTICS_SINK": "stdout"})
    assert quiet_resend.stderr == "re-sent 3 point(s)\n"


def test_relative_times_count_back_from_now(seeded):
    result = invoke("export", "--db", str(seeded), "--since", "599s", "--until", "now")
    assert [json.loads(x)["requestId"] for x in result.stdout.splitlines()] == ["a-2", "a-3"]


@pytest.mark.parametrize("bucket", ["0s", "1.5s", "soon"])
def test_audit_refuses_a_bucket_that_is_not_whole_seconds(db_path, bucket):
    result = invoke("audit", "--db", str(db_path), "--bucket", bucket)
    assert result.exit_code == 2
    assert "--bucket" in result.stderr
