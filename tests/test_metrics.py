"""GET /metrics (SPEC §12) in process: exactly the table's names, types and labels; the
figures read from the log (so another process on the same log reads the same totals,
and a restart resets nothing); the key; and a scrape that never scans the events."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import AUTH, KEY, ROOT, api_call, assert_error
from hoox_callers import CALLERS
from prometheus_client.parser import text_string_to_metric_families

from storage import metrics, replay
from storage.log import EventLog, counters, retention
from storage.log.counters import Flusher, Tally
from storage.replay import sink

SPEC = (ROOT / "docs" / "SPEC.md").read_text()


def spec_table() -> dict[str, tuple[str, set[str]]]:
    """{metric: (type, labels)} of SPEC §12's table."""
    section = SPEC[SPEC.index("## 12."):]
    rows = re.findall(r"^\| `(analytics_worker_\w+)` \| ([a-z]+)[^|]*\| ([^|]*)\|", section,
                      flags=re.M)
    return {name: (kind, set(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def scrape(client: Any, **headers: str) -> dict[str, Any]:
    """{family name as exposed: family} of one scrape."""
    result = client.simulate_get("/metrics", headers=headers or None)
    assert result.status_code == 200, result.text
    assert result.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {}
    for family in text_string_to_metric_families(result.text):
        name = family.name + ("_total" if family.type == "counter" else "")
        families[name] = family
    return families


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    matching = [s.value for s in families[name].samples
                if s.name in (name, name + "_total") and
                all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, (name, labels, families[name].samples)
    return matching[0]


@pytest.fixture
def relay_config(config, standin):
    return dataclasses.replace(config, sink="relay", relay_url=standin.relay_url,
                               relay_key=standin.relay_key, cloudflare_timeout_ms=500,
                               cloudflare_api_base=standin.api_base,
                               cloudflare_api_token=standin.api_token,
                               cloudflare_account_id=standin.account_id)


def replayer(db_path: Path, config: Any) -> replay.Replayer:
    target = sink.from_config(config.sink, relay_url=config.relay_url,
                              relay_key=config.relay_key, timeout_ms=500,
                              http=httpx.Client(), clock=__import__("time").time)
    return replay.Replayer(EventLog(db_path), target, backoff=replay.Backoff(base_s=0.0,
                                                                              cap_s=0.0))


def test_every_metric_of_spec_12_with_its_type_and_labels_and_no_other(
        make_client, relay_config, standin, db_path):
    client = make_client(relay_config, background=False)
    client.simulate_post("/track/api-call", json=api_call("one"))
    client.simulate_post("/track/api-call", json=api_call("one"))
    client.simulate_post("/track/api-call", json={"not": "valid"})
    client.simulate_post("/query", json={"query": "SELECT count() AS n FROM hoox_telemetry",
                                         "source": "local"})
    client.simulate_post("/query", json={"query": "SELECT count() AS n FROM hoox_telemetry",
                                         "source": "cloudflare"})
    sender = replayer(db_path, relay_config)
    standin.set_mode("refuse")
    assert sender.tick().outcome == "failed"
    standin.set_mode("up")
    assert sender.tick().outcome == "sent"

    families = scrape(client)
    table = spec_table()
    assert len(table) == 16
    assert set(families) == set(table)
    for name, (kind, labels) in table.items():
        family = families[name]
        assert family.type == kind, name
        assert family.samples, f"{name} has no sample"
        seen = {k for s in family.samples for k in s.labels} - {"le"}
        assert seen == labels, name


def test_cloudflare_reachable_has_no_sample_until_a_call_was_made_then_says_its_answer(
        make_client, config, relay_config, standin):
    """Nothing failed before the first call: no 0 to alarm on, configured or not."""
    bare = scrape(make_client(config))
    assert not bare["analytics_worker_cloudflare_reachable"].samples
    client = make_client(relay_config)
    families = scrape(client)
    assert not families["analytics_worker_cloudflare_reachable"].samples
    query = {"query": "SELECT count() AS n FROM hoox_telemetry", "source": "cloudflare"}
    assert client.simulate_post("/query", json=query).status_code == 200
    assert scrape(client)["analytics_worker_cloudflare_reachable"].samples[0].value == 1
    standin.set_mode("refuse")
    assert client.simulate_post("/query", json=query).status_code >= 500
    assert scrape(client)["analytics_worker_cloudflare_reachable"].samples[0].value == 0


def test_accepted_and_duplicates_are_counted_per_type_with_the_events(make_client, config,
                                                                      db_path):
    hoox = dataclasses.replace(config, layout="hoox")
    client = make_client(hoox)
    trade = CALLERS[0].body  # its requestId is its own: a repeat is a duplicate
    signal = next(c.body for c in CALLERS if c.route == "signal")
    call = next(c.body for c in CALLERS if c.route == "api-call" and c.index1)
    assert client.simulate_post("/track/trade", json=trade).status_code == 200
    assert client.simulate_post("/track/trade", json=trade).json["duplicate"] is True
    other_call = {**call, "indexes": ["another-call"]}
    batch = {"events": [call, other_call, call, {"type": "signal", **signal},
                        {"type": "trade", **trade}]}
    answer = client.simulate_post("/track/batch", json=batch)
    assert answer.json == {"success": True, "accepted": 3, "duplicates": 2}, answer.text

    families = scrape(client)
    accepted = "analytics_worker_events_accepted_total"
    duplicate = "analytics_worker_events_duplicate_total"
    assert value(families, accepted, type="trade") == 1
    assert value(families, accepted, type="api-call") == 2
    assert value(families, accepted, type="signal") == 1
    assert value(families, accepted, type="notification") == 0  # every type, from 0
    assert value(families, duplicate, type="trade") == 2
    assert value(families, duplicate, type="api-call") == 1
    assert value(families, "analytics_worker_log_events") == 4
    # What the log holds, counted independently.
    log = EventLog(db_path, layout="hoox")
    assert log.count() == 4
    assert dict(log.conn.execute("SELECT type, count(*) FROM events GROUP BY type")) == {
        "trade": 1, "api-call": 2, "signal": 1}
    log.close()


def test_another_process_on_the_same_log_reads_the_same_totals(make_client, config):
    first = make_client(config)
    for i in range(5):
        first.simulate_post("/track/api-call", json=api_call(f"e-{i}"))
    first.simulate_post("/track/api-call", json=api_call("e-0"))
    first.simulate_post("/track/api-call", json={"bad": True})
    first.simulate_post("/track/api-call", json=api_call(), headers={"X-Internal-Auth-Key": "no"})
    before = scrape(first)  # this worker's own counts are flushed by its scrape
    # A second app is what another worker (or a restarted one) is: nothing of the first's
    # memory, only the log.
    second = make_client(config)
    after = scrape(second)
    for name, labels in [("analytics_worker_events_accepted_total", {"type": "api-call"}),
                         ("analytics_worker_events_duplicate_total", {"type": "api-call"}),
                         ("analytics_worker_requests_rejected_total", {"status": "400"}),
                         ("analytics_worker_requests_rejected_total", {"status": "401"}),
                         ("analytics_worker_log_events", {})]:
        assert value(after, name, **labels) == value(before, name, **labels), name
    assert value(after, "analytics_worker_events_accepted_total", type="api-call") == 5
    assert value(after, "analytics_worker_requests_rejected_total", status="401") == 1
    count = [s for s in after["analytics_worker_request_duration_seconds"].samples
             if s.name.endswith("_count") and s.labels["route"] == "/track/api-call"]
    assert count[0].value == 7


def test_metrics_takes_the_key_as_a_bearer_token_or_the_header(make_client, config):
    client = make_client(config)
    assert scrape(client, **{"X-Internal-Auth-Key": "", "Authorization": f"Bearer {KEY}"})
    assert scrape(client, **AUTH)
    for headers in ({"X-Internal-Auth-Key": ""},
                    {"X-Internal-Auth-Key": "", "Authorization": "Bearer wrong"},
                    {"X-Internal-Auth-Key": "", "Authorization": f"Basic {KEY}"}):
        assert_error(client.simulate_get("/metrics", headers=headers), 401, "Unauthorized")


def test_retention_lowers_the_event_count_and_never_the_accepted_total(make_client, config,
                                                                       clock, db_path):
    stdout = dataclasses.replace(config, sink="stdout")
    client = make_client(stdout, background=False)
    for i in range(4):
        client.simulate_post("/track/api-call", json=api_call(f"old-{i}"))
    log = EventLog(db_path)
    sender = replay.Replayer(log, sink.StdoutSink(out=open("/dev/null", "w")))
    assert sender.tick().sent == 4
    clock.advance(40 * 86_400)
    client.simulate_post("/track/api-call", json=api_call("new"))
    assert retention.prune(log, clock(), 30, sink="stdout") == 4
    families = scrape(client)
    assert value(families, "analytics_worker_log_events") == 1 == log.count()
    assert value(families, "analytics_worker_events_accepted_total", type="api-call") == 5
    assert value(families, "analytics_worker_replay_backlog_events", sink="stdout") == 1
    log.close()


def test_the_backlog_without_counting_equals_the_counted_backlog(config, db_path, clock):
    log = EventLog(db_path)
    for n in range(3):
        log.append_row_groups([[(f"r-{n}-{i}", "api-call", 1_000 * i, "{}", "w", "e", "ok",
                                 1.0) for i in range(100)]])
    null = open("/dev/null", "w")
    sender = replay.Replayer(log, sink.StdoutSink(out=null), batch_size=120)
    for expected in (300, 180, 60, 0):
        counted = replay.backlog(log, "stdout")
        assert metrics.backlog_of(log, "stdout", 500_000)[0] == counted.events == expected
        sender.tick()
    assert metrics.backlog_of(log, "stdout", 500_000) == (0, 0.0)
    log.close()


def test_a_scrape_reads_by_key_and_never_scans_the_events(config, db_path, event_log):
    event_log.append_row_groups([[(f"s-{i}", "api-call", i, "{}", "w", "e", "ok", 1.0)
                                  for i in range(50)]])
    statements: list[str] = []
    event_log.conn.set_trace_callback(statements.append)
    snap = metrics.snapshot(event_log, dataclasses.replace(config, sink="relay"), 10_000)
    event_log.conn.set_trace_callback(None)
    assert snap.log_events == 50 and snap.sinks[0].backlog == 50
    assert statements
    for sql in statements:
        plan = " / ".join(row[3] for row in event_log.conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert not re.search(r"\bSCAN events\b", plan), (sql, plan)


def test_a_flush_the_log_refuses_keeps_the_counts_for_the_next(tmp_path):
    blocker = tmp_path / "not-yet"
    blocker.write_text("a file where the log's directory should be")
    path = blocker / "analytics.db"
    tally = Tally()
    tally.count(counters.REJECTED, counters.labels(status="503"), 2)
    tally.observe(counters.REQUEST_DURATION, "route", "/track/api-call", 0.003)
    flusher = Flusher(tally, lambda: EventLog(path))
    assert flusher.flush() is False
    assert not tally.empty()
    blocker.unlink()  # the disk is back
    assert flusher.flush() is True and tally.empty()
    log = EventLog(path)
    rows = {(name, tuple(sorted(lab.items()))): v for name, lab, v in counters.read(log.conn)}
    assert rows[(counters.REJECTED, (("status", "503"),))] == 2
    bucket = counters.REQUEST_DURATION + "_bucket"
    # Below the observation no row is written; the scrape shows those buckets as 0.
    assert (bucket, (("le", "0.0025"), ("route", "/track/api-call"))) not in rows
    assert rows[(bucket, (("le", "0.005"), ("route", "/track/api-call")))] == 1
    assert rows[(bucket, (("le", "+Inf"), ("route", "/track/api-call")))] == 1
    flusher.stop()
    log.close()
