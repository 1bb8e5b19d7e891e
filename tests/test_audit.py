"""audit end to end: the log replayed into the Cloudflare stand-in (relay protocol in,
Analytics Engine SQL out, answered by ClickHouse), then points lost and duplicated there,
audited, repaired, audited again."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from click.testing import CliRunner
from standin import StandIn

from cli import main
from storage.intake import datapoint
from storage.intake.events import Event
from storage.log import EventLog
from storage.replay import Replayer
from storage.replay.sink import RelaySink

pytestmark = pytest.mark.e2e

HOUR_MS = 3_600_000
T0 = 1_764_000_000_000  # 2025-11-24T16:00:00Z, on an hour
SINCE, UNTIL = "2025-11-24T16:00:00Z", "2025-11-24T20:00:00Z"
PER_HOUR = 10


def event(request_id: str, received_ms: int, latency: float) -> Event:
    body = {"worker": "trade-worker", "endpoint": "/webhook", "latencyMs": latency,
            "success": True}
    return Event(request_id, "api-call", received_ms, body,
                 datapoint.api_call(request_id, received_ms, body))


def hours(*which: int) -> list[Event]:
    """PER_HOUR events in each given hour after T0, spread over the hour."""
    return [event(f"h{h}-{i}", T0 + h * HOUR_MS + i * 359_000 + 7, (i % 7) * 1.5 + 0.25)
            for h in which for i in range(PER_HOUR)]


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with StandIn() as s:
        yield s


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def replay_to(standin: StandIn, event_log: EventLog, http: httpx.Client) -> None:
    sink = RelaySink(standin.relay_url, standin.relay_key, http=http, timeout_ms=5000,
                     clock=standin.clock)
    assert Replayer(event_log, sink).drain(sleep=lambda s: None).drained


@pytest.fixture
def replayed(standin: StandIn, event_log: EventLog, http: httpx.Client) -> EventLog:
    """Four hours of events, every one replayed to the stand-in. The stand-in stamps each
    point with the replay time (now), a year after the events: only double2 tells when an
    event happened."""
    event_log.append(hours(0, 1, 2, 3))
    replay_to(standin, event_log, http)
    return event_log


def audit(standin: StandIn, db_path: Path, *args: str) -> Any:
    env = {**standin.env(), "ANALYTICS_DB": str(db_path)}
    return CliRunner().invoke(main, ["audit", "--since", SINCE, "--until", UNTIL, *args],
                              env=env, catch_exceptions=False)


def audit_json(standin: StandIn, db_path: Path, *args: str) -> tuple[int, dict]:
    result = audit(standin, db_path, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


def by_bucket(report: dict) -> dict[str, dict]:
    return {b["bucket"]: b for b in report["buckets"]}


def test_audit_after_a_clean_replay_exits_zero(standin, replayed, db_path):
    result = audit(standin, db_path)
    assert result.exit_code == 0, result.output
    assert "summary: 4 bucket(s), 0 differ; local 40 events, Cloudflare 40" in result.stdout

    code, report = audit_json(standin, db_path)
    assert code == 0
    assert [b["bucket"] for b in report["buckets"]] == [
        "2025-11-24T16:00:00Z", "2025-11-24T17:00:00Z", "2025-11-24T18:00:00Z",
        "2025-11-24T19:00:00Z"]
    for b in report["buckets"]:
        assert b["local"]["events"] == b["cloudflare"]["events"] == PER_HOUR
        assert b["local"]["latencyMsSum"] == pytest.approx(b["cloudflare"]["latencyMsSum"])
        assert b["matches"] and not b["missing"] and not b["duplicates"]


def test_cloudflare_side_is_bucketed_by_event_time_not_replay_time(standin, replayed,
                                                                   db_path):
    # Every point was written now: by `timestamp` they would all fall in one bucket.
    stamps = standin.query(f"SELECT count(DISTINCT toStartOfHour(timestamp)) AS n,"
                           f" count() AS points FROM {standin.dataset}")["data"][0]
    assert int(stamps["points"]) == 40 and int(stamps["n"]) <= 2
    code, report = audit_json(standin, db_path)
    assert code == 0
    assert len(report["buckets"]) == 4  # the four hours of the events
    assert all(b["cloudflare"]["events"] == PER_HOUR for b in report["buckets"])


def test_lost_and_duplicated_points_are_named_by_bucket_and_counted(standin, replayed,
                                                                    db_path):
    assert standin.remove("h1-2", "h1-5", "h3-0") == 3
    assert standin.duplicate("h2-4", copies=2) == 2
    assert standin.duplicate("h2-7") == 1

    result = audit(standin, db_path)
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "2025-11-24T17:00:00Z: missing 2: h1-2, h1-5" in out
    assert "2025-11-24T19:00:00Z: missing 1: h3-0" in out
    assert "2025-11-24T18:00:00Z: duplicated 2 (3 extra copies): h2-4 x3, h2-7 x2" in out
    assert "missing 3, duplicated 2 (3 extra copies)" in out
    assert "count DISTINCT index1" in out

    code, report = audit_json(standin, db_path)
    assert code == 1
    buckets = by_bucket(report)
    assert buckets["2025-11-24T16:00:00Z"]["matches"] is True
    h1 = buckets["2025-11-24T17:00:00Z"]
    assert (h1["local"]["events"], h1["cloudflare"]["events"]) == (10, 8)
    assert h1["local"]["latencyMsSum"] > h1["cloudflare"]["latencyMsSum"]
    assert h1["missing"] == ["h1-2", "h1-5"]
    h2 = buckets["2025-11-24T18:00:00Z"]
    assert (h2["local"]["events"], h2["cloudflare"]["events"]) == (10, 13)
    assert h2["cloudflare"]["distinctIds"] == 10
    assert h2["duplicates"] == {"h2-4": 3, "h2-7": 2}
    assert buckets["2025-11-24T19:00:00Z"]["missing"] == ["h3-0"]
    assert report["summary"]["mismatched"] == 3


def test_repair_resends_exactly_the_missing_events_and_then_only_duplicates_remain(
        standin, replayed, db_path):
    standin.remove("h1-2", "h1-5", "h3-0")
    standin.duplicate("h2-4")
    calls_before = len(standin.calls)

    result = audit(standin, db_path, "--repair")
    assert result.exit_code == 1  # this run found differences; the repair is unverified
    assert "re-sent 3 missing event(s)" in result.stdout
    repairs = standin.calls[calls_before:]
    assert sorted(i for call in repairs for i in call.indexes) == ["h1-2", "h1-5", "h3-0"]
    assert all(call.status == 200 for call in repairs)

    code, report = audit_json(standin, db_path)
    assert code == 1
    assert report["summary"]["missing"] == 0
    assert report["summary"]["duplicated"] == 1
    assert [b["bucket"] for b in report["buckets"] if not b["matches"]] == [
        "2025-11-24T18:00:00Z"]
    assert by_bucket(report)["2025-11-24T18:00:00Z"]["duplicates"] == {"h2-4": 2}
    # What was re-sent is the event as the log has it: same time and latency.
    assert by_bucket(report)["2025-11-24T17:00:00Z"]["matches"]


def test_events_not_replayed_yet_are_pending_and_never_repaired(standin, replayed,
                                                                db_path, http):
    replayed.append([event("late-1", T0 + HOUR_MS + 1000, 1.0)])
    calls_before = len(standin.calls)
    code, report = audit_json(standin, db_path, "--repair")
    assert code == 1
    h1 = by_bucket(report)["2025-11-24T17:00:00Z"]
    assert h1["pending"] == ["late-1"] and h1["missing"] == []
    assert report["repaired"] is None
    assert standin.calls[calls_before:] == []


def test_a_range_starting_inside_a_bucket_compares_the_same_part_on_both_sides(
        standin, replayed, db_path):
    env = {**standin.env(), "ANALYTICS_DB": str(db_path)}
    result = CliRunner().invoke(main, ["audit", "--json", "--since", "2025-11-24T16:30:00Z",
                                       "--until", "2025-11-24T17:30:00Z"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    counts = [(b["bucket"], b["local"]["events"], b["cloudflare"]["events"])
              for b in report["buckets"]]
    # Events are 359 s apart from the hour: 4 after 16:30, 6 before 17:30.
    assert counts == [("2025-11-24T16:00:00Z", 4, 4), ("2025-11-24T17:00:00Z", 6, 6)]


def test_sampled_bucket_is_compared_by_sum_of_sample_interval(standin, replayed, db_path):
    # As Analytics Engine samples: keep every other point of the first hour, each now
    # standing for two events. Latencies there are made equal so sums stay exact.
    first_hour = [p for p in standin.points if p["index1"].startswith("h0-")]
    for i, p in enumerate(first_hour):
        p["double1"] = 2.0
        p["_sample_interval"] = 2
    standin.points[:] = [p for p in standin.points if p not in first_hour[1::2]]
    standin.remove()  # reload the table from the edited points
    replayed.db.conn.execute("UPDATE events SET double1 = 2.0 WHERE request_id LIKE 'h0-%'")

    code, report = audit_json(standin, db_path)
    h0 = by_bucket(report)["2025-11-24T16:00:00Z"]
    assert h0["cloudflare"]["points"] == 5 and h0["cloudflare"]["events"] == 10
    assert h0["cloudflare"]["sampled"] is True
    assert h0["matches"] is True
    assert code == 0

    standin.remove(first_hour[0]["index1"])  # now one sampled point is lost too
    code, report = audit_json(standin, db_path)
    assert code == 1
    assert by_bucket(report)["2025-11-24T16:00:00Z"]["cloudflare"]["events"] == 8


def test_audit_that_cannot_reach_cloudflare_exits_2(standin, replayed, db_path):
    standin.set_mode("500")
    result = audit(standin, db_path)
    assert result.exit_code == 2
    assert "Cloudflare" in result.stderr and "500" in result.stderr
    assert "Traceback" not in result.output


def test_audit_without_cloudflare_settings_says_what_to_set(db_path):
    env = {"ANALYTICS_DB": str(db_path), "CLOUDFLARE_API_TOKEN": "",
           "CLOUDFLARE_ACCOUNT_ID": ""}
    result = CliRunner().invoke(main, ["audit", "--since", SINCE, "--until", UNTIL], env=env)
    assert result.exit_code == 2
    assert "CLOUDFLARE_API_TOKEN" in result.stderr


def test_repair_with_no_sink_configured_fails_clearly(standin, replayed, db_path):
    standin.remove("h0-1")
    env = {**standin.env(), "ANALYTICS_DB": str(db_path), "ANALYTICS_SINK": "none"}
    result = CliRunner().invoke(main, ["audit", "--since", SINCE, "--until", UNTIL,
                                       "--repair"], env=env)
    assert result.exit_code == 2
    assert ("repair stopped after re-sending 0 of 1 missing event(s): ANALYTICS_SINK is "
            "none") in result.stderr


def test_audit_shows_progress_only_on_a_terminal(standin, replayed, db_path):
    env = {**standin.env(), "ANALYTICS_DB": str(db_path)}
    args = ["audit", "--since", SINCE, "--until", UNTIL]
    shown = CliRunner().invoke(main, args, env=env, obj={"interactive": True})
    assert shown.exit_code == 0 and "auditing" in shown.stderr
    quiet = CliRunner().invoke(main, args, env=env)
    assert quiet.exit_code == 0 and quiet.stderr == ""
