"""gunicorn settings for analytics-worker: `gunicorn -c python:gunicorn_conf 'app:create_app()'`.

Each worker is uvicorn's (an event loop with uvloop and httptools) running the ASGI app:
slow or idle connections wait on the loop instead of holding a worker, keep-alive
connections are served, and the events of concurrent requests are committed together.
Its HTTP protocol (worker.py) closes a connection that takes longer than
ANALYTICS_HEADER_TIMEOUT_MS to deliver a whole request.
"""

import sys

from storage.config import Config, ConfigError
from storage.log import LayoutMismatch, check_layout

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
