"""Shared fixtures: real SQLite files in tmp_path, the real Falcon app in process, and the
real service under gunicorn on a free loopback port."""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import falcon.testing
import falcon.util
import httpx
import pytest

from app import create_app
from storage.config import Config
from storage.log import EventLog

ROOT = Path(__file__).resolve().parent.parent
KEY = "test-key"
AUTH = {"X-Internal-Auth-Key": KEY}
# The quick loop (`./test.sh --quick`) runs a quarter of each property's examples; the
# whole suite runs them all.
QUICK = os.environ.get("ANALYTICS_TESTS_QUICK") == "1"
# One HTTP client for the tests' own requests (it is thread-safe): `httpx.get()` builds a
# client, TLS context and all, on every call, about 40 ms of CPU that a loop waiting on a
# server pays each time round. No connection is kept: each request has a new one, as
# before, and never meets a server's keep-alive timeout.
# A client's TLS context loads the CA bundle: every client the tests make shares this one.
TLS = ssl.create_default_context()
HTTP = httpx.Client(verify=TLS, limits=httpx.Limits(max_keepalive_connections=0))


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    """A client of the test's own, which keeps its connections (as the service's does)."""
    with httpx.Client(verify=TLS) as client:
        yield client


@pytest.hookimpl(trylast=True)  # after `-m` has deselected
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The order in which test.sh's processes take files (`--dist loadfile` with
    `--no-loadscope-reorder`): files marked `long` first, then the others by their number
    of tests, most first. A file of few tests that wait on processes of their own (a
    mirror, a wrangler) or draw hundreds of examples, started last, would end alone, long
    after the others."""
    files: dict[Any, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.path, []).append(item)
    order = sorted(files.values(), key=lambda tests: (
        tests[0].get_closest_marker("long") is None, -len(tests)))
    items[:] = [item for tests in order for item in tests]


def examples(count: int) -> int:
    """Hypothesis's max_examples for a property of `count` examples."""
    return max(20, count // 4) if QUICK else count


# A replay drain in a test ends by then whatever happens: on a clock that never moves, a
# send that failed would keep it waiting for its backoff for the hour drain allows.
DRAIN_S = 30


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """`condition()`'s first true value, asked every 0.1 s; fails after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class FixedClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_764_000_000.0):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


_counter = itertools.count()


def api_call(request_id: str | None = None, **payload: Any) -> dict[str, Any]:
    """An envelope-shaped api-call body; keyword arguments override payload fields."""
    body = {"worker": "trade-worker", "endpoint": "/webhook", "latencyMs": 24.5,
            "success": True}
    body.update(payload)
    return {"requestId": request_id or f"req-{uuid.uuid4()}", "payload": body}


def assert_error(result: Any, status: int, *fragments: str) -> dict[str, Any]:
    """The one error shape of SPEC §3, with a message that mentions each fragment."""
    assert result.status_code == status, result.text
    body = result.json
    assert body["success"] is False
    assert isinstance(body["error"], str) and body["error"] and "\n" not in body["error"]
    for fragment in fragments:
        assert fragment in body["error"] or fragment in str(body.get("details")), body
    assert "Traceback" not in result.text
    return body


def strict_json(text: str | bytes) -> Any:
    """JSON as a browser's JSON.parse reads it: NaN and Infinity are not JSON (Python's
    json, and so falcon.testing's `result.json`, would accept them)."""
    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "analytics.db"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def config(db_path: Path) -> Config:
    return Config(internal_keys=(KEY, "rotated-key"), db_path=str(db_path), sink="none")


def shut_down(app: Any) -> None:
    """The ASGI lifespan's shutdown, as uvicorn sends it when a worker stops: the app
    hangs up from the writer process (which waits for that when it stops)."""
    async def lifespan() -> None:
        messages = [{"type": "lifespan.shutdown"}]

        async def receive() -> dict:
            return messages.pop(0)

        async def send(message: dict) -> None:
            assert message["type"] == "lifespan.shutdown.complete", message

        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)

    falcon.util.async_to_sync(lifespan)


@pytest.fixture
def make_client(clock: FixedClock) -> Iterator[Callable[..., falcon.testing.TestClient]]:
    """Apps made by the test, shut down after it (before the fixtures they use, such as
    the writer process, stop)."""
    made: list[Any] = []

    def make(config: Config, **kwargs: Any) -> falcon.testing.TestClient:
        app = create_app(config, clock=clock, **kwargs)
        made.append(app)
        return falcon.testing.TestClient(app, headers=AUTH)
    yield make
    for app in made:
        shut_down(app)


@pytest.fixture
def client(make_client: Callable[..., falcon.testing.TestClient],
           config: Config) -> falcon.testing.TestClient:
    return make_client(config)


@pytest.fixture
def event_log(db_path: Path) -> Iterator[EventLog]:
    """A second, independent connection to the log: what was committed, not what the app
    believes."""
    log = EventLog(db_path)
    yield log
    log.close()


# Ports for the servers the tests start are taken below the kernel's ephemeral range: a
# port from that range, once let go, can go to any outgoing connection before the server
# meant for it binds it (wrangler once failed so, "Address already in use").
EPHEMERAL_LOW = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])


def free_port() -> int:
    for _ in range(200):
        port = random.randrange(10_000, EPHEMERAL_LOW)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use
            return port
    raise RuntimeError(f"no free port between 10000 and {EPHEMERAL_LOW}")


class Server:
    """The service under real gunicorn, on loopback."""

    def __init__(self, env: dict[str, str], cwd: Path, workers: int = 2,
                 port: int | None = None):
        """`port`: a given one (a harness already bound to it), else a free one."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.cwd = cwd
        self.workers = workers
        self.proc: subprocess.Popen | None = None
        self.log_file = cwd / f"gunicorn-{self.port}.log"

    def start(self, timeout: float = 20.0) -> "Server":
        out = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:gunicorn_conf",
             "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers),
             "app:create_app()"],
            cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_file.read_text()}")
            try:
                if HTTP.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not start: {self.log_file.read_text()}")

    def _children(self) -> list[tuple[int, str]]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-a", "-P", str(self.proc.pid)], capture_output=True,
                             text=True).stdout
        return [(int(pid), cmd) for pid, _, cmd in
                (line.partition(" ") for line in out.splitlines())]

    def worker_pids(self) -> list[int]:
        return [pid for pid, cmd in self._children() if "storage.writer.process" not in cmd]

    def writer_pid(self) -> int | None:
        """The service's writer process, started by the master."""
        pids = [pid for pid, cmd in self._children() if "storage.writer.process" in cmd]
        return pids[0] if pids else None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def service_env(db_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANALYTICS_", "CLOUDFLARE_", "INTERNAL_KEY"))}
    env.update({"INTERNAL_KEY_BINDING": KEY, "ANALYTICS_DB": str(db_path),
                "ANALYTICS_SINK": "none", "PYTHONPATH": str(ROOT)})
    env.update(extra)
    return env


@contextmanager
def gunicorn_servers(workdir: Path, db_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(workers: int = 2, **env: str) -> Server:
        server = Server(service_env(db_path, **env), workdir, workers).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def gunicorn_server(tmp_path: Path, db_path: Path) -> Iterator[Callable[..., Server]]:
    """Starts the service under gunicorn; every server started is stopped afterwards."""
    with gunicorn_servers(tmp_path, db_path) as start:
        yield start


@pytest.fixture(scope="module")
def module_gunicorn_server(tmp_path_factory: pytest.TempPathFactory
                           ) -> Iterator[Callable[..., Server]]:
    """As `gunicorn_server`, for the tests of a module that share one service (each with
    ids of its own): stopped after the module's last test."""
    workdir = tmp_path_factory.mktemp("service")
    with gunicorn_servers(workdir, workdir / "analytics.db") as start:
        yield start


@pytest.fixture
def writer_process(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    """Starts the service's writer process for a log, as gunicorn's master does; returns
    its socket, for create_app(writer_socket=...)."""
    from storage.writer.process import Supervisor

    started: list[Supervisor] = []

    def start(db_path: Path, **env: str) -> str:
        supervisor = Supervisor(str(tmp_path / f"writer-{len(started)}.sock"),
                                env=service_env(db_path, **env))
        supervisor.start()
        started.append(supervisor)
        return supervisor.socket_path

    yield start
    for supervisor in started:
        supervisor.stop()


# -- Cloudflare stand-in (replay, /query from Cloudflare) ---------------------------------

@pytest.fixture
def standin() -> Iterator[Any]:
    """A stand-in for Cloudflare on loopback: the relay protocol and the SQL API, over
    real ClickHouse (chdb). See tests/standin.py."""
    from standin import StandIn

    server = StandIn()
    yield server
    server.close()


def ensure_debian(package: str, *programs: str) -> None:
    """Debian's `package`, installed as test.sh does when one of its `programs` is missing
    (pytest run without test.sh)."""
    if not all(os.access(program, os.X_OK) for program in programs):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        wait = ["-o", "DPkg::Lock::Timeout=600"]  # another test's install holds the lock
        subprocess.run(["apt-get", *wait, "update", "-qq"], check=True, env=env, timeout=900)
        subprocess.run(["apt-get", *wait, "install", "-y", "-qq", package], check=True,
                       env=env, timeout=1200, stdout=subprocess.DEVNULL)


# -- the browser (dashboard) ----------------------------------------------------------------

# Debian's chromium, driven by Playwright from PyPI. The browser tests run it as its headless
# shell (package chromium-headless-shell, the build Playwright itself runs headless: the same
# engine without the windowed browser's machinery, a third of the CPU a page); one test
# runs in the `chromium` package a person opens too. Root needs --no-sandbox, and nothing
# of the browser's own may call out (updates, sync, field trials).
CHROMIUM = "/usr/bin/chromium-headless-shell"
CHROMIUM_PACKAGE = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def playwright_api() -> Iterator[Any]:
    """Per module: while Playwright's sync API runs, its event loop is the thread's running
    loop, and falcon.testing cannot drive the ASGI app in process; it must not outlive
    the browser tests."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


def launch(playwright_api: Any, package: str, executable: str) -> Any:
    """The browser of Debian's `package` (installed when missing), with a new, empty
    profile directory: Playwright gives every launch its own."""
    ensure_debian(package, executable)
    return playwright_api.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def chromium(playwright_api: Any) -> Iterator[Any]:
    browser = launch(playwright_api, "chromium-headless-shell", CHROMIUM)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def chromium_package(playwright_api: Any) -> Iterator[Any]:
    browser = launch(playwright_api, "chromium", CHROMIUM_PACKAGE)
    yield browser
    browser.close()


# -- Prometheus (the metrics, SPEC §12) -----------------------------------------------------

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = "/usr/bin/promtool"


def readme_yaml(first_key: str) -> str:
    """The README's YAML block that starts with `first_key` (its scrape config, its rules)."""
    import re

    readme = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", readme, flags=re.S)
              if b.startswith(first_key)]
    assert len(blocks) == 1, f"the README has no single YAML block starting {first_key}"
    return blocks[0]


class Prometheus:
    """A real Prometheus on loopback, in a directory of its own, scraping `target` every
    `interval` with the internal key as its `authorization` setting."""

    def __init__(self, workdir: Path, config: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        (workdir / "prometheus.yml").write_text(config)
        self.log_file = workdir / "prometheus.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "Prometheus":
        out = open(self.log_file, "ab")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={self.workdir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log_file.read_text()}")
            try:
                if HTTP.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus did not start: {self.log_file.read_text()}")

    def api(self, path: str, **params: Any) -> Any:
        body = HTTP.get(self.url + "/api/v1/" + path, params=params, timeout=5).json()
        assert body["status"] == "success", body
        return body["data"]

    def value(self, expr: str) -> float | None:
        """The instant value of a PromQL expression of one series (None: no series)."""
        result = self.api("query", query=expr)["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    """Starts Prometheus scraping a server, with the README's scrape config (its target,
    key and interval replaced) and rules; every one started is stopped afterwards."""
    import yaml

    ensure_debian("prometheus", PROMETHEUS, PROMTOOL)
    started: list[Prometheus] = []

    def start(server: Server, *, interval: str = "1s", rules: str | None = None) -> Prometheus:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        config = yaml.safe_load(readme_yaml("scrape_configs:"))
        job = config["scrape_configs"][0]
        job["scrape_interval"] = interval
        job["authorization"]["credentials"] = KEY
        job["static_configs"] = [{"targets": [f"127.0.0.1:{server.port}"]}]
        config["global"] = {"evaluation_interval": interval}
        config["rule_files"] = []
        if rules is not None:
            (workdir / "rules.yml").write_text(rules)
            config["rule_files"] = [str(workdir / "rules.yml")]
        prom = Prometheus(workdir, yaml.safe_dump(config)).start()
        started.append(prom)
        return prom

    yield start
    for prom in started:
        prom.stop()
