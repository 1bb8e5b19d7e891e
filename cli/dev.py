"""`dev`: a Workers project under `wrangler dev` with its Analytics Engine datasets kept on
this machine (SPEC §6.3). One command starts the service on its embedded defaults and runs
the project's Worker and the relay in one `wrangler dev` process, on configs derived from
the project's and the relay's; the project's own config is never written."""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import click

from .project import (Dataset, ProjectError, derive, derive_relay, derived_path,
                      find_config, read_config, relay_dir, write_json)
from .wrangler import Node, Wrangler, find_node, find_wrangler

# Where the log lives, under the project's wrangler state directory (which the Workers
# templates already ignore), unless --data says otherwise.
DATA_DIR = Path(".wrangler") / "analytics-worker"
# How long wrangler and the service get to stop on their own before they are killed.
STOP_GRACE_S = 10.0
# The service starts once the Worker's port answers, or after this long at the latest.
SERVICE_AFTER_S = 60.0
# Wrangler's own default address for the Worker.
WRANGLER_PORT = 8787
WRANGLER_HOST = "localhost"
SQL_PATH = "/client/v4/accounts/local/analytics_engine/sql"
PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InputError(click.ClickException):
    """What the command cannot run on: said in one message, exit code 2."""

    exit_code = 2


@dataclass
class Plan:
    """Everything checked and decided before anything starts."""

    config_path: Path
    env: str | None
    derived: dict[str, Any]
    datasets: list[Dataset]
    relay: dict[str, Any]
    wrangler: Wrangler
    node: Node
    data_dir: Path
    wrangler_args: list[str]
    worker_url: str
    notes: list[str] = field(default_factory=list)


@click.command(context_settings={"ignore_unknown_options": True})
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The project's wrangler config (default: wrangler.json, wrangler.jsonc or "
                   "wrangler.toml, found as wrangler finds it).")
@click.option("-e", "--env", default=None,
              help="The wrangler environment to run (default: $CLOUDFLARE_ENV, else the top "
                   "level). Its datasets are the ones kept.")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="The service's port (default: a free one; taken: another, and said).")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Directory of the log (default: .wrangler/analytics-worker beside the "
                   "config, kept across runs).")
@click.argument("wrangler_args", nargs=-1, type=click.UNPROCESSED)
def dev(config_path: Path | None, env: str | None, port: int | None, data_dir: Path | None,
        wrangler_args: tuple[str, ...]) -> None:
    """Run `wrangler dev` with the Worker's Analytics Engine datasets kept here.

    The points the Worker writes land in a local log and answer Analytics Engine SQL.

    Every analytics_engine_datasets binding of the environment becomes a service binding
    to the relay's AnalyticsEngineDataset entrypoint, in a copy of the config beside it
    (removed at exit; the project's config is never written). The service runs on its
    embedded defaults with a fresh key; the log is .wrangler/analytics-worker/analytics.db
    beside the config (--data to move it) and survives restarts. The project's wrangler
    (node_modules) runs when it has one, else the relay's pinned version through npx;
    both need Node 22. Ctrl-C stops wrangler, the relay and the service.

    \b
    Example:
      cd my-worker && analytics-worker dev --env staging -- --port 8787
    Arguments after -- go to `wrangler dev` as they are.
    """
    try:
        plan = make_plan(Path.cwd(), config_path, env, data_dir, list(wrangler_args),
                         os.environ)
    except ProjectError as e:
        raise InputError(str(e)) from None
    sys.exit(Session(plan, port, os.environ).run())


def make_plan(cwd: Path, config_path: Path | None, env: str | None, data_dir: Path | None,
              wrangler_args: list[str], environ: Mapping[str, str]) -> Plan:
    config_path = (cwd / config_path).resolve() if config_path else find_config(cwd)
    if not config_path.is_file():
        raise ProjectError(f"{config_path}: no such file")
    env = env or environ.get("CLOUDFLARE_ENV") or None
    config = read_config(config_path)
    derived, datasets = derive(config, env, config_path)
    project = config_path.parent
    relay = relay_dir()
    wrangler = find_wrangler(project, relay, environ.get("PATH"))
    node = find_node(wrangler.node_major, project, relay, environ.get("PATH"))
    # The service itself refuses a log of another layout (gunicorn_conf) before it
    # serves; checked here, the log's imports would delay wrangler's start.
    data_dir = (cwd / data_dir).resolve() if data_dir else project / DATA_DIR
    wrangler_args, worker_url, notes = _worker_address(wrangler_args, config)
    return Plan(config_path, env, derived, datasets, read_config(relay / "wrangler.jsonc"),
                wrangler, node, data_dir, wrangler_args, worker_url, notes)


def _worker_address(args: list[str], config: dict[str, Any]
                    ) -> tuple[list[str], str, list[str]]:
    """wrangler's arguments, the Worker's URL as wrangler will serve it, and what to say
    about it. Wrangler's usual port, when taken, gets a free one here rather than
    wrangler's silent next port, so that the URL printed is right and the output says
    why."""
    settings = config.get("dev") if isinstance(config.get("dev"), dict) else {}
    host = _arg(args, "--ip") or settings.get("ip") or WRANGLER_HOST
    scheme = _arg(args, "--local-protocol") or settings.get("local_protocol") or "http"
    given = _arg(args, "--port")
    if given is not None:
        return args, f"{scheme}://{host}:{given}", []  # the developer's choice stands
    wanted = int(settings.get("port") or WRANGLER_PORT)
    if _port_free(host, wanted):
        return args, f"{scheme}://{host}:{wanted}", []
    port = _free_port()
    return (["--port", str(port), *args], f"{scheme}://{host}:{port}",
            [f"port {wanted} is taken: the Worker listens on {port}"])


def _arg(args: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1" if host in ("localhost", "*", "0.0.0.0") else host, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Session:
    """One run: wrangler, then the service once the Worker answers; at the end, or on a
    signal, both stopped with their process groups, and the derived configs removed."""

    def __init__(self, plan: Plan, port: int | None, environ: Mapping[str, str]):
        self.plan = plan
        self.port = port
        self.environ = dict(environ)
        self.key = secrets.token_urlsafe(18)
        self.notes = list(plan.notes)  # the banner says which ports were taken
        self.derived = derived_path(plan.config_path, os.getpid())
        self.relay_dir: Path | None = None
        self.listener: socket.socket | None = None
        self.service: subprocess.Popen | None = None
        self.wrangler: subprocess.Popen | None = None
        self.terminal = False  # whether wrangler was given the terminal
        self.stop_signal: int | None = None
        self.stop_deadline = 0.0

    def run(self) -> int:
        handlers = {s: signal.signal(s, self._on_signal)
                    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        try:
            self.listener = self._listen()
            service_url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
            self._write_configs(service_url)
            self._print_banner(service_url)
            if self.stop_signal is not None:
                return 128 + self.stop_signal
            self.wrangler = self._start_wrangler(service_url)
            return self._wait()
        finally:
            self._stop()
            if self.listener is not None:
                self.listener.close()
            for s, handler in handlers.items():
                signal.signal(s, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            self.stop_deadline = time.monotonic() + STOP_GRACE_S
        if self.wrangler is not None and self.wrangler.poll() is None:
            _signal_group(self.wrangler.pid, signum)

    def _listen(self) -> socket.socket:
        """The service's socket, bound here so that the port is known (and held) before
        anything starts; gunicorn takes it over."""
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", self.port or 0))
        except OSError:
            sock.bind(("127.0.0.1", 0))
            self.notes.append(f"port {self.port} is taken: the service listens on "
                              f"{sock.getsockname()[1]}")
        sock.listen(128)
        return sock

    def _write_configs(self, service_url: str) -> None:
        write_json(self.derived, self.plan.derived)
        self.relay_dir = Path(tempfile.mkdtemp(prefix="analytics-worker-dev-"))
        write_json(self.relay_dir / "wrangler.json",
                   derive_relay(self.plan.relay, relay_dir() / "src" / "index.js",
                                self.plan.env, service_url))

    def _print_banner(self, service_url: str) -> None:
        plan = self.plan
        where = f"{_shown(plan.config_path)}" + (f', environment "{plan.env}"' if plan.env
                                                  else "")
        lines = [f"analytics-worker dev: {where}"]
        if plan.datasets:
            lines.append("  datasets kept on this machine:")
            width = max(len(d.binding) for d in plan.datasets)
            for d in plan.datasets:
                hand = f" (already swapped in {plan.config_path.name})" if d.by_hand else ""
                lines.append(f"    {d.binding.ljust(width)}  -> {d.dataset}{hand}")
        else:
            lines.append(f"  no Analytics Engine dataset in {plan.config_path.name}"
                         f"{' under env.' + plan.env if plan.env else ''}: nothing to keep; "
                         f"the service runs all the same")
        db = plan.data_dir / "analytics.db"
        lines += [
            f"  Worker:     {plan.worker_url}",
            f"  dashboard:  {service_url}/   (internal key: {self.key})",
            f"  SQL API:    {service_url}/client/v4   (token: {self.key})",
            f"  log:        {_shown(db)}   (the service's output: "
            f"{_shown(plan.data_dir / 'service.log')})",
            f"  wrangler:   {plan.wrangler.description}, on Node {plan.node.version}",
        ]
        lines += [f"  note:       {note}" for note in self.notes]
        if plan.datasets:
            name = plan.datasets[0].dataset
            table = name if PLAIN_NAME.match(name) else f"`{name}`"
            sql = f"SELECT timestamp, index1, blob1, double1 FROM {table} ORDER BY timestamp " \
                  f"DESC LIMIT 10"
            lines += ["  query:", f"    curl -s {service_url}{SQL_PATH} -H "
                      f"'Authorization: Bearer {self.key}' --data-binary {shlex.quote(sql)}"]
        click.echo("\n".join(lines) + "\n")
        sys.stdout.flush()

    def _start_service(self, listener: socket.socket) -> subprocess.Popen:
        """The service on its embedded defaults (SQLite log, data points to stdout, no
        network): nothing of the developer's environment that configures it (their
        Cloudflare token, say) reaches it."""
        self.plan.data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in self.environ.items()
               if not k.startswith(("ANALYTICS_", "CLOUDFLARE_", "INTERNAL_KEY"))}
        env.update(INTERNAL_KEY_BINDING=self.key,
                   ANALYTICS_DB=str(self.plan.data_dir / "analytics.db"))
        out = open(self.plan.data_dir / "service.log", "ab")
        try:
            # One worker: one developer's traffic, half the memory of serve's two.
            return subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "python:gunicorn_conf",
                 "--bind", f"fd://{listener.fileno()}", "--workers", "1", "app:create_app()"],
                cwd=self.plan.data_dir, env=env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, pass_fds=(listener.fileno(),),
                start_new_session=True)
        finally:
            out.close()

    def _start_wrangler(self, service_url: str) -> subprocess.Popen:
        plan = self.plan
        assert self.relay_dir is not None
        argv = [*plan.wrangler.argv, "dev", "-c", str(self.derived),
                "-c", str(self.relay_dir / "wrangler.json")]
        if plan.env:
            argv += ["--env", plan.env]
        argv += plan.wrangler_args
        env = {**self.environ,
               "PATH": f"{plan.node.path.parent}{os.pathsep}{self.environ.get('PATH', '')}",
               # The relay reads its key and the service's address from the process's
               # environment (a config's declared secrets and vars): never from a file.
               "INTERNAL_KEY_BINDING": self.key, "ANALYTICS_SERVICE_URL": service_url}
        # wrangler and everything it starts (workerd, esbuild) in a process group of their
        # own, stopped as one; in a terminal that group gets the terminal, so that Ctrl-C
        # and wrangler's keys reach it as they would without this command.
        self.terminal = _owns_terminal()
        return subprocess.Popen(argv, env=env, preexec_fn=_take_terminal if self.terminal
                                else None, process_group=None if self.terminal else 0)

    def _wait(self) -> int:
        """Until wrangler exits. The service starts once the Worker's port answers (or
        after SERVICE_AFTER_S): its start costs about 1.5 s of CPU, which on a small
        machine would delay the Worker's. Until then its socket, bound already, holds
        what the relay sends, and the relay's queue what waits too long."""
        assert self.wrangler is not None and self.listener is not None
        service_failed = False
        service_at = time.monotonic() + SERVICE_AFTER_S
        while True:
            try:
                code = self.wrangler.wait(timeout=0.1)
                break
            except subprocess.TimeoutExpired:
                pass
            if self.service is None:
                if self.stop_signal is None and (time.monotonic() > service_at
                                                 or _answers(self.plan.worker_url)):
                    self.service = self._start_service(self.listener)
                continue
            if not service_failed and self.service.poll() is not None:
                service_failed = True
                self._report_service()
                self._on_signal(signal.SIGTERM, None)
            if self.stop_signal is not None and time.monotonic() > self.stop_deadline:
                _signal_group(self.wrangler.pid, signal.SIGKILL)
        if service_failed:
            assert self.service is not None
            # 2: the service refused what it was given (a log of another layout).
            return 2 if self.service.returncode == 2 else 1
        if self.stop_signal is not None and code not in (0, -signal.SIGKILL):
            # Stopped by a signal: say which, however wrangler chose to end (143 has been
            # seen after a SIGINT).
            return 128 + self.stop_signal
        return code if code >= 0 else 128 - code

    def _report_service(self) -> None:
        assert self.service is not None
        log = self.plan.data_dir / "service.log"
        lines = log.read_text(errors="replace").splitlines()
        refusals = [line for line in lines if line.startswith("analytics-worker: ")]
        if self.service.returncode == 2 and refusals:
            reason = refusals[-1].removeprefix("analytics-worker: ")
            click.echo(f"analytics-worker dev: the service refused to start: {reason} (its "
                       f"log here is {_shown(self.plan.data_dir / 'analytics.db')}: use "
                       f"another --data directory)", err=True)
            return
        click.echo(f"analytics-worker dev: the service stopped (exit "
                   f"{self.service.returncode}); the end of {_shown(log)}:\n  "
                   + "\n  ".join(lines[-15:]), err=True)

    def _stop(self) -> None:
        if self.wrangler is not None:
            _stop_group(self.wrangler, signal.SIGTERM)
            if self.terminal:
                _give_back_terminal()
        if self.service is not None:
            _stop_group(self.service, signal.SIGTERM)
        self.derived.unlink(missing_ok=True)
        if self.relay_dir is not None:
            shutil.rmtree(self.relay_dir, ignore_errors=True)
        if self.service is not None:
            click.echo(f"analytics-worker dev: stopped; the log stays in "
                       f"{_shown(self.plan.data_dir / 'analytics.db')}", err=True)


def _answers(url: str) -> bool:
    """Whether something accepts connections at the URL's host and port (a connection
    only, no request: the Worker's code does not run)."""
    host, _, port = url.split("://", 1)[1].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.1):
            return True
    except (OSError, ValueError):
        return False


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stop_group(proc: subprocess.Popen, signum: int) -> None:
    """Stop a process and everything in its group: the signal, STOP_GRACE_S for them to
    go, then SIGKILL. The group outlives its leader when wrangler's children are slower."""
    if proc.poll() is None or _group_alive(proc.pid):
        _signal_group(proc.pid, signum)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(proc.pid):
            return
        time.sleep(0.05)
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


def _owns_terminal() -> bool:
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _take_terminal() -> None:
    """In wrangler's process, before it starts: a group of its own, in the foreground."""
    os.setpgid(0, 0)
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    os.tcsetpgrp(0, os.getpgrp())
    signal.signal(signal.SIGTTOU, previous)


def _give_back_terminal() -> None:
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(0, os.getpgrp())
    except OSError:
        pass
    finally:
        signal.signal(signal.SIGTTOU, previous)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
