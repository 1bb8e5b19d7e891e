"""An unexpected error (a fault of the service, never of the request) is answered with the
one error shape and the request's id, and logged as one line with that id; its traceback
goes to the log once per distinct error, or every time with ANALYTICS_LOG_TRACEBACKS=always.
The fault here is a clock that fails, passed in as the app's clock."""

from __future__ import annotations

import logging

import falcon.testing
import pytest

from app import create_app
from conftest import AUTH, api_call, assert_error
from storage.config import Config, ConfigError


class BrokenClock:
    """A clock that fails once `broken` is set (the app reads it for every event)."""

    def __init__(self) -> None:
        self.broken = False

    def __call__(self) -> float:
        if self.broken:
            raise RuntimeError("the clock\nfailed")
        return 1_764_000_000.0


def failing_client(config: Config) -> tuple[falcon.testing.TestClient, BrokenClock]:
    clock = BrokenClock()
    client = falcon.testing.TestClient(create_app(config, clock=clock, background=False),
                                       headers=AUTH)
    clock.broken = True
    return client, clock


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "analytics_worker"
            and r.levelno >= logging.ERROR]


def has_traceback(record: logging.LogRecord) -> bool:
    return record.exc_info is not None or "Traceback" in record.getMessage()


def test_an_unexpected_error_logs_one_line_per_request_and_its_traceback_once(
        config: Config, caplog: pytest.LogCaptureFixture) -> None:
    client, _ = failing_client(config)
    caplog.set_level(logging.INFO, logger="analytics_worker")
    ids = []
    for i, request_id in enumerate(["trace-1", None, "trace-3"]):
        headers = {"X-Request-Id": request_id} if request_id else {}
        result = client.simulate_post("/track/api-call", json=api_call(f"e-{i}"),
                                      headers=headers)
        body = assert_error(result, 500, "nothing was stored")
        given = result.headers["X-Request-Id"]
        assert given == (request_id or given) and given in body["error"]
        ids.append(given)
    assert len(set(ids)) == 3
    records = errors_logged(caplog)
    assert len(records) == 3
    for record, request_id in zip(records, ids):
        first_line = record.getMessage().splitlines()[0]
        assert request_id in first_line and "POST /track/api-call" in first_line
        assert "RuntimeError: the clock failed" in first_line
    # the first carries the traceback, the other two say it was logged before
    assert [has_traceback(r) for r in records] == [True, False, False]
    assert all(len(r.getMessage().splitlines()) == 1 for r in records[1:])


def test_a_request_id_that_cannot_be_logged_is_replaced(
        config: Config, caplog: pytest.LogCaptureFixture) -> None:
    client, _ = failing_client(config)
    result = client.simulate_post("/track/api-call", json=api_call("e"),
                                  headers={"X-Request-Id": "x" * 65})
    assert_error(result, 500)
    assert result.headers["X-Request-Id"] != "x" * 65


def test_every_traceback_is_logged_with_the_debug_setting(
        config: Config, caplog: pytest.LogCaptureFixture) -> None:
    client, _ = failing_client(config.replace(log_tracebacks="always"))
    caplog.set_level(logging.INFO, logger="analytics_worker")
    for i in range(3):
        assert_error(client.simulate_post("/track/api-call", json=api_call(f"e-{i}")), 500)
    assert [has_traceback(r) for r in errors_logged(caplog)] == [True, True, True]


def test_the_traceback_setting_is_once_unless_set_to_always() -> None:
    assert Config.from_env({}).log_tracebacks == "once"
    assert Config.from_env({"ANALYTICS_LOG_TRACEBACKS": "always"}).log_tracebacks == "always"
    with pytest.raises(ConfigError, match="ANALYTICS_LOG_TRACEBACKS"):
        Config.from_env({"ANALYTICS_LOG_TRACEBACKS": "sometimes"})
