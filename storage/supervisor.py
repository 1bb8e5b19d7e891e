"""A child process of gunicorn's master, started and started again whenever it exits,
until `stop()`: the service's writer and its mirror.
Runs a thread in the master (gunicorn may reap the child itself: `Popen.poll` still
tells that it exited)."""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("analytics_worker")


class Supervisor:
    def __init__(self, module: str, socket_path: str, env: dict[str, str] | None = None, *,
                 ready: Callable[[str, int], bool] | None = None,
                 ready_timeout_s: float = 20.0,
                 restart_after_s: tuple[float, float] = (0.05, 0.5),
                 stop_timeout_s: float = 10.0):
        """`python -m module socket_path`. `ready(socket_path, pid)`: whether a started
        child answers; `start()` and each restart wait for it (None: they do not wait).
        `restart_after_s`: the pause before each of the first three restarts, then before
        each later one (no busy loop on a child that cannot start)."""
        self.module = module
        self.socket_path = socket_path
        self._env = env
        self._ready = ready
        self._ready_timeout_s = ready_timeout_s
        self._restart_after_s = restart_after_s
        self._stop_timeout_s = stop_timeout_s
        self._stopping = threading.Event()
        self._proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._watch, name=f"{self.module}-supervisor",
                         daemon=True).start()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _spawn(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", self.module, self.socket_path],
                                      env=self._env)
        self.starts += 1
        if self._ready is None:
            return
        deadline = time.monotonic() + self._ready_timeout_s
        while time.monotonic() < deadline and not self._stopping.is_set():
            if self._proc.poll() is not None:
                return  # it failed to start: the watcher tries again
            if self._ready(self.socket_path, self._proc.pid):
                return
            time.sleep(0.02)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            proc = self._proc
            if proc is not None:
                self._wait_exit(proc)
            if self._stopping.is_set():
                return
            if proc is not None and proc.poll() is not None:
                log.warning("%s exited (%s); starting it again", self.module, proc.returncode)
                first, later = self._restart_after_s
                if self._stopping.wait(first if self.starts < 3 else later):
                    return
                self._spawn()

    def _wait_exit(self, proc: subprocess.Popen) -> None:
        """Until `proc` exits, or a second passes (to see `stop()`): on a pidfd, which is
        readable the moment the process ends, so the master sleeps while its children
        run and restarts one at once (polling every 50 ms cost the master more CPU than
        the whole service used at rest)."""
        try:
            fd = os.pidfd_open(proc.pid)
        except (AttributeError, OSError):  # no pidfd (old kernel), or already reaped
            self._stopping.wait(0.05)
            return
        try:
            waiting = select.poll()  # (select() refuses descriptors past 1023)
            waiting.register(fd, select.POLLIN)
            waiting.poll(1000)
        finally:
            os.close(fd)

    def stop(self) -> None:
        """Ask the child to finish (SIGTERM), wait for it, and remove its socket."""
        self._stopping.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self._stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
        try:
            Path(self.socket_path).unlink()
        except OSError:
            pass
