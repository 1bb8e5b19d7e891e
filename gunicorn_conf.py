"""gunicorn settings for analytics-worker: `gunicorn -c python:gunicorn_conf 'app:create_app()'`.

Each worker is uvicorn's (an event loop with uvloop and httptools) running the ASGI app:
slow or idle connections wait on the loop instead of holding a worker, keep-alive
connections are served. The master also starts the service's writer, one process that
commits the events of every worker (`storage/writer/process.py`), before the workers, and
starts it again if it dies; it stops it after the workers have exited. With
`ANALYTICS_MIRROR=chdb` (the default, when chdb is installed) it starts the mirror's
process the same way (`storage/query/mirror_process.py`): the columnar copy that answers local
queries.
Its HTTP protocol (worker.py) closes a connection that takes longer than
ANALYTICS_HEADER_TIMEOUT_MS to deliver a whole request.
"""

import importlib.util
import os
import sys
import tempfile

from storage.config import Config, ConfigError
from storage.log import LayoutMismatch, check_layout
from storage.query.mirror import MIRROR_SOCKET_ENV
from storage.query.mirror_process import Supervisor as MirrorSupervisor
from storage.query.mirror_process import log_events_at_least
from storage.services import WRITER_SOCKET_ENV
from storage.writer.process import Supervisor

bind = "127.0.0.1:8787"
workers = 2
worker_class = "worker.HeaderDeadlineWorker"
# Seconds an idle keep-alive connection stays open (behind a load balancer, set it above
# the balancer's own idle timeout).
keepalive = 5
# A worker whose loop is stuck longer than this is killed and replaced.
timeout = 30
# On SIGTERM a worker stops accepting, finishes its requests (their events committed) and
# exits; after this many seconds it is killed.
graceful_timeout = 10
# The control socket under ~/.gunicorn is not needed and fails on read-only homes.
control_socket_disable = True
accesslog = None
errorlog = "-"


def on_starting(server) -> None:
    """Refuse to start without a key, or on a log of another layout, with a message that
    says what to set."""
    try:
        config = Config.from_env()
        config.require_keys()
        check_layout(config.db_path, config.layout)
    except (ConfigError, LayoutMismatch) as e:
        print(f"analytics-worker: {e}", file=sys.stderr)
        sys.exit(2)


_supervisor: Supervisor | None = None
_mirror: MirrorSupervisor | None = None


# A Unix socket's path holds at most 107 bytes (103 on macOS): under a TMPDIR too long for
# that, the sockets go under /tmp instead (the writer would never answer there).
SOCKET_PATH_MAX = 100


def _socket_directory() -> str:
    directory = tempfile.mkdtemp(prefix="analytics-writer-")
    if len(os.path.join(directory, "writer.sock").encode()) <= SOCKET_PATH_MAX:
        return directory
    os.rmdir(directory)
    return tempfile.mkdtemp(prefix="analytics-writer-", dir="/tmp")


def when_ready(server) -> None:
    """Before the first worker: the writer, on a socket in a directory of its own."""
    global _supervisor
    directory = _socket_directory()
    path = os.path.join(directory, "writer.sock")  # the mirror's is as long
    root = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    _supervisor = Supervisor(path, env=env)
    _supervisor.start()
    os.environ[WRITER_SOCKET_ENV] = path  # the workers, forked after this, find it
    _start_mirror(directory, env)


def _start_mirror(directory: str, env: dict[str, str]) -> None:
    """The mirror's process, exec'd (chdb is never imported here: a fork after importing
    it leaves the children's queries hanging). It loads chdb and copies the log only once
    the log holds ANALYTICS_MIRROR_MIN_EVENTS events: on a smaller log the log's engine
    answers every query in time, and the copy would cost memory for nothing. (The
    master itself never opens the log once workers may fork: see `wait_until_needed`.)"""
    global _mirror
    config = Config.from_env()
    if config.mirror == "off":
        return
    if importlib.util.find_spec("chdb") is None:
        if log_events_at_least(config.db_path, config.mirror_min_events):
            print("analytics-worker: the log holds more than ANALYTICS_MIRROR_MIN_EVENTS "
                  "events, and the mirror that answers long ranges on such a log is not "
                  "installed: pip install 'analytics-worker[mirror]' (or set "
                  "ANALYTICS_MIRROR=off to silence this)", file=sys.stderr)
        return
    path = os.path.join(directory, "mirror.sock")
    _mirror = MirrorSupervisor(path, env=env)
    _mirror.start()  # it waits, without chdb, until the log needs it
    os.environ[MIRROR_SOCKET_ENV] = path  # no socket there yet: the log's engine answers


def on_exit(server) -> None:
    """After the workers have exited (they finished their requests): the writer last."""
    if _mirror is not None:
        _mirror.stop()
    if _supervisor is not None:
        _supervisor.stop()
        try:
            os.rmdir(os.path.dirname(_supervisor.socket_path))
        except OSError:
            pass
