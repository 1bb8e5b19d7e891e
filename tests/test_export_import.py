"""export and import: the NDJSON interchange round trip, CSV, time ranges, streaming."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import main
from storage.intake import datapoint
from storage.intake.events import Event
from storage.interchange import export as export_
from storage.interchange.ndjson import to_line
from storage.log import EventLog

T0 = 1_764_000_000_000  # 2025-11-24T16:00:00Z in ms


def event(request_id: str, received_ms: int, **payload: Any) -> Event:
    body = {"worker": "trade-worker", "endpoint": "/webhook", "latencyMs": 24.5,
            "success": True}
    body.update(payload)
    return Event(request_id, "api-call", received_ms, body,
                 datapoint.api_call(request_id, received_ms, body))


def run(*args: str, input: bytes | None = None) -> Any:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def seeded(path: Path, events: list[Event]) -> Path:
    log = EventLog(path)
    log.append(events)
    log.close()
    return path


VARIED = [
    event("a-1", T0, latencyMs=24),
    event("a-2", T0 + 1, latencyMs=24.0, success=False),
    event("ünï-😀", T0 + 999, worker="wörker \"quoted\"", endpoint="/a,b\nc"),
    event("a-4", T0 + 3_600_000, latencyMs=1e-7),
    event("a-5", T0 + 7_200_000, latencyMs=123456789012345678901234567890),
]


def test_export_imported_into_an_empty_log_exports_the_same_bytes(tmp_path):
    first = seeded(tmp_path / "first.db", VARIED)
    exported = run("export", "--db", str(first))
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.count("\n") == len(VARIED)

    (tmp_path / "events.ndjson").write_text(exported.stdout, encoding="utf-8")
    loaded = run("import", "--db", str(tmp_path / "second.db"),
                 str(tmp_path / "events.ndjson"))
    assert loaded.exit_code == 0, loaded.output
    again = run("export", "--db", str(tmp_path / "second.db"))
    assert again.stdout_bytes == exported.stdout_bytes


def test_export_lines_carry_the_payload_exactly_as_stored(tmp_path):
    db = seeded(tmp_path / "a.db", VARIED[:1])
    [line] = run("export", "--db", str(db)).stdout.splitlines()
    assert line == ('{"requestId":"a-1","type":"api-call","receivedAt":'
                    '"2025-11-24T16:00:00.000Z","payload":{"worker":"trade-worker",'
                    '"endpoint":"/webhook","latencyMs":24,"success":true}}')


latencies = st.one_of(st.integers(min_value=0, max_value=10**20),
                      st.floats(min_value=0, allow_nan=False, allow_infinity=False))


@pytest.mark.untimed
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.text(min_size=1, max_size=12), latencies, st.booleans(),
                          st.integers(min_value=0, max_value=10**11)),
                min_size=1, max_size=8))
def test_round_trip_keeps_any_valid_event_byte_for_byte(tmp_path_factory, items):
    tmp = tmp_path_factory.mktemp("rt")
    events = [event(f"id-{i}-{name}", offset, worker=name, latencyMs=latency, success=ok)
              for i, (name, latency, ok, offset) in enumerate(items)
              if not datapoint.problems(datapoint.api_call(f"id-{i}-{name}", offset,
                                                           {"worker": name, "endpoint": "/e",
                                                            "latencyMs": latency,
                                                            "success": ok}))]
    first = seeded(tmp / "first.db", events)
    out = io.StringIO()
    export_.export(EventLog(first).conn, out)
    (tmp / "x.ndjson").write_text(out.getvalue(), encoding="utf-8")
    assert run("import", "--db", str(tmp / "second.db"), str(tmp / "x.ndjson")).exit_code == 0
    back = io.StringIO()
    export_.export(EventLog(tmp / "second.db").conn, back)
    assert back.getvalue() == out.getvalue()


def test_export_range_includes_since_and_excludes_until(tmp_path):
    db = seeded(tmp_path / "a.db", VARIED)
    result = run("export", "--db", str(db), "--since", "2025-11-24T16:00:00.001Z",
                 "--until", "2025-11-24T18:00:00Z")
    ids = [json.loads(line)["requestId"] for line in result.stdout.splitlines()]
    assert ids == ["a-2", "ünï-😀", "a-4"]


def test_export_accepts_a_duration_before_now(tmp_path):
    db = seeded(tmp_path / "a.db", VARIED)
    now = (T0 + 7_200_000) / 1000 + 1  # one second after the last event
    result = CliRunner().invoke(main, ["export", "--db", str(db), "--since", "90m"],
                                obj={"clock": lambda: now})
    ids = [json.loads(line)["requestId"] for line in result.stdout.splitlines()]
    assert ids == ["a-4", "a-5"]


def test_export_as_csv_has_one_quoted_row_per_event(tmp_path):
    db = seeded(tmp_path / "a.db", VARIED[:4])
    result = run("export", "--db", str(db), "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == list(export_.CSV_HEADER)
    assert rows[1] == ["a-1", "api-call", "2025-11-24T16:00:00.000Z", "trade-worker",
                       "/webhook", "24", "true"]
    assert rows[2][5:] == ["24", "false"]
    assert rows[3][:5] == ["ünï-😀", "api-call", "2025-11-24T16:00:00.999Z",
                           "wörker \"quoted\"", "/a,b\nc"]
    assert rows[4][5] == "1e-07"
    assert len(rows) == 5


def test_export_writes_to_a_file_and_reports_the_count_on_stderr(tmp_path):
    db = seeded(tmp_path / "a.db", VARIED)
    target = tmp_path / "out.ndjson"
    result = run("export", "--db", str(db), "-o", str(target))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr == f"exported {len(VARIED)} event(s)\n"  # no progress: no terminal
    assert len(target.read_text(encoding="utf-8").splitlines()) == len(VARIED)


def test_export_refuses_an_empty_range(tmp_path):
    result = run("export", "--db", str(tmp_path / "a.db"), "--since", "2026-01-02",
                 "--until", "2026-01-01")
    assert result.exit_code == 2
    assert "--until must be after --since" in result.stderr


def test_export_refuses_a_time_it_cannot_read(tmp_path):
    result = run("export", "--db", str(tmp_path / "a.db"), "--since", "last tuesday")
    assert result.exit_code == 2
    assert "neither an ISO 8601 time" in result.stderr


def test_export_to_an_unwritable_path_is_a_clear_error(tmp_path):
    db = seeded(tmp_path / "a.db", VARIED)
    result = run("export", "--db", str(db), "-o", str(tmp_path / "no" / "such" / "dir.json"))
    assert result.exit_code == 1
    assert "Cannot write" in result.stderr and "Traceback" not in result.output


def test_export_streams_in_pages_without_holding_the_range(tmp_path):
    db = seeded(tmp_path / "a.db", [event(f"p-{i}", T0 + i) for i in range(25)])
    writes: list[str] = []

    class Recorder(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return len(text)

    done: list[int] = []
    total = export_.export(EventLog(db).conn, Recorder(), page=10, progress=done.append)
    assert total == 25
    assert [w.count("\n") for w in writes] == [10, 10, 5]
    assert done == [10, 10, 5]


def test_ndjson_chunks_match_the_interchange_line_format(tmp_path):
    db = seeded(tmp_path / "a.db", VARIED)
    conn = EventLog(db).conn
    text = "".join(chunk for chunk, _ in export_.ndjson_chunks(conn))
    # SPEC §7, written out: keys in its order, no spaces, receivedAt in UTC with
    # milliseconds, text as UTF-8 (not \u escapes), the payload as the log stores it
    expected = [
        '{"requestId":"a-1","type":"api-call","receivedAt":"2025-11-24T16:00:00.000Z",'
        '"payload":{"worker":"trade-worker","endpoint":"/webhook","latencyMs":24,'
        '"success":true}}',
        '{"requestId":"a-2","type":"api-call","receivedAt":"2025-11-24T16:00:00.001Z",'
        '"payload":{"worker":"trade-worker","endpoint":"/webhook","latencyMs":24.0,'
        '"success":false}}',
        '{"requestId":"ünï-😀","type":"api-call","receivedAt":"2025-11-24T16:00:00.999Z",'
        r'"payload":{"worker":"wörker \"quoted\"","endpoint":"/a,b\nc","latencyMs":24.5,'
        '"success":true}}',
        '{"requestId":"a-4","type":"api-call","receivedAt":"2025-11-24T17:00:00.000Z",'
        '"payload":{"worker":"trade-worker","endpoint":"/webhook","latencyMs":1e-7,'
        '"success":true}}',
        '{"requestId":"a-5","type":"api-call","receivedAt":"2025-11-24T18:00:00.000Z",'
        '"payload":{"worker":"trade-worker","endpoint":"/webhook",'
        '"latencyMs":123456789012345678901234567890,"success":true}}',
    ]
    assert text.split("\n") == expected + [""]
    assert [json.loads(line)["payload"] for line in expected] == [e.payload for e in VARIED]


def test_import_reports_bad_lines_by_number_and_imports_the_rest(tmp_path):
    good = to_line("ok-1", "api-call", T0, '{"worker":"w","endpoint":"/e","latencyMs":1,'
                                           '"success":true}')
    bad = '{"requestId":"bad","type":"api-call","receivedAt":"2025-11-24T16:00:00Z",' \
          '"payload":{"worker":"w","endpoint":"/e","latencyMs":-1,"success":true}}\n'
    source = tmp_path / "in.ndjson"
    source.write_text(good + bad + "not json\n", encoding="utf-8")
    result = run("import", "--db", str(tmp_path / "a.db"), str(source))
    assert result.exit_code == 1
    assert "line 2: $.payload.latencyMs" in result.stderr
    assert "line 3: " in result.stderr
    assert "imported 1, skipped 0 already in the log, refused 2 bad line(s)" in result.stderr
    assert EventLog(tmp_path / "a.db").count() == 1


def test_import_twice_skips_the_events_already_in_the_log(tmp_path):
    db = seeded(tmp_path / "a.db", VARIED)
    exported = tmp_path / "x.ndjson"
    run("export", "--db", str(db), "-o", str(exported))
    result = run("import", "--db", str(db), str(exported))
    assert result.exit_code == 0
    assert f"imported 0, skipped {len(VARIED)} already in the log" in result.stderr
