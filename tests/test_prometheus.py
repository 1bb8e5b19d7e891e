"""The metrics (SPEC §12) as Prometheus sees them: Debian's Prometheus on loopback scrapes
the service under gunicorn (2 workers) every second with the README's scrape config and
rules, and the figures are read back through Prometheus's own HTTP API, across a relay
outage and a killed worker."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import httpx
import pytest

from conftest import (AUTH, PROMETHEUS, PROMTOOL, api_call, ensure_debian, readme_yaml,
                      wait_for)

pytestmark = [pytest.mark.gunicorn, pytest.mark.e2e]

SETTINGS = {
    "CLOUDFLARE_TIMEOUT_MS": "500",
    "ANALYTICS_REPLAY_LEASE_MS": "2000",
    "ANALYTICS_REPLAY_BACKOFF_MAX_MS": "300",
}
RULES = ("AnalyticsWorkerReplayBehind", "AnalyticsWorkerSendsFailing",
         "AnalyticsWorkerLogLarge")


def post(url: str, prefix: str, count: int) -> tuple[int, int]:
    """(events acknowledged as stored, acknowledged as duplicates): every event once, then
    a tenth of them again."""
    stored = duplicates = 0
    with httpx.Client(base_url=url, headers=AUTH, timeout=10) as http:
        ids = [f"{prefix}-{i}" for i in range(count)] + [f"{prefix}-{i}" for i in
                                                        range(0, count, 10)]
        for request_id in ids:
            answer = http.post("/track/api-call", json=api_call(request_id))
            assert answer.status_code == 200, answer.text
            if answer.json().get("duplicate"):
                duplicates += 1
            else:
                stored += 1
    return stored, duplicates


def test_the_readmes_rules_pass_promtool():
    ensure_debian("prometheus", PROMETHEUS, PROMTOOL)
    rules = readme_yaml("groups:")
    check = subprocess.run([PROMTOOL, "check", "rules", "/dev/stdin"], input=rules,
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 3 rules found" in check.stdout, check.stdout


def test_prometheus_reads_the_services_totals_across_an_outage_and_a_killed_worker(
        gunicorn_server, standin, prometheus):
    server = gunicorn_server(**standin.env(), **SETTINGS)
    prom = prometheus(server, rules=readme_yaml("groups:"))

    # Both workers answer scrapes and ingest: four clients, one connection per request.
    totals: list[tuple[int, int]] = []
    threads = [threading.Thread(target=lambda p=p: totals.append(post(server.url, p, 60)))
               for p in ("a", "b", "c", "d")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    stored = sum(t[0] for t in totals)
    duplicates = sum(t[1] for t in totals)
    assert stored == 240 and duplicates == 24

    accepted = 'sum(analytics_worker_events_accepted_total)'
    wait_for(lambda: prom.value(accepted) == stored, 20, "the accepted total")
    assert prom.value('sum(analytics_worker_events_duplicate_total)') == duplicates
    wait_for(lambda: prom.value('analytics_worker_replay_backlog_events{sink="relay"}') == 0,
             20, "the first events to replay")
    assert prom.value('analytics_worker_replay_sent_events_total{sink="relay"}') >= stored

    # A worker killed: its replacement starts from the log, so nothing resets.
    os.kill(server.worker_pids()[0], signal.SIGKILL)

    # The relay down: the backlog rises, every failed send is counted.
    standin.set_mode("refuse")
    more, _ = post(server.url, "outage", 50)
    backlog = 'analytics_worker_replay_backlog_events{sink="relay"}'
    wait_for(lambda: (prom.value(backlog) or 0) >= more, 20, "the backlog to rise")
    failures = 'sum(analytics_worker_replay_failures_total{sink="relay"})'
    wait_for(lambda: (prom.value(failures) or 0) >= 3, 20, "failed sends to be counted")
    assert prom.value('analytics_worker_replay_lag_seconds{sink="relay"}') > 0
    # The README's "sends failing" rule sees it (pending: it fires after 10 minutes).
    wait_for(lambda: any(a["labels"]["alertname"] == "AnalyticsWorkerSendsFailing"
                         and a["state"] == "pending" for a in prom.api("alerts")["alerts"]),
             20, "the sends-failing alert to be pending")
    during = prom.value(failures)

    # The relay back: the backlog falls to 0, and the count of the outage stays.
    standin.set_mode("up")
    wait_for(lambda: prom.value(backlog) == 0, 30, "the backlog to drain")
    assert prom.value(failures) >= during
    assert prom.value('analytics_worker_replay_lag_seconds{sink="relay"}') == 0
    wait_for(lambda: prom.value(accepted) == stored + more, 20, "the accepted total")
    reasons = {r["metric"]["reason"] for r in prom.api(
        "query", query="analytics_worker_replay_failures_total")["result"]}
    assert reasons == {"unreachable"}

    # Whichever worker answered each scrape, and the killed one too: no counter went back.
    # Each counter's series, named by the label this test made them differ in.
    counters = {"analytics_worker_events_accepted_total": ("type", {"api-call"}),
                "analytics_worker_replay_sent_events_total": ("sink", {"relay"}),
                "analytics_worker_replay_failures_total": ("reason", {"unreachable"}),
                "analytics_worker_request_duration_seconds_count": (
                    "route", {"/track/api-call", "/metrics"})}
    for name, (label, values) in counters.items():
        result = prom.api("query", query=f"resets({name}[5m])")["result"]
        assert {series["metric"].get(label) for series in result} >= values, (name, result)
        for series in result:
            assert float(series["value"][1]) == 0, (name, series)
    targets = prom.api("targets")["activeTargets"]
    assert [t["health"] for t in targets] == ["up"]
    assert prom.value('min_over_time(up[5m])') == 1  # not one scrape failed

    # The README's three rules are loaded and evaluate without error.
    rules = {r["name"]: r for g in prom.api("rules")["groups"] for r in g["rules"]}
    assert set(rules) == set(RULES)
    assert all(r["health"] == "ok" for r in rules.values()), rules
