"""gunicorn settings for analytics-worker: `gunicorn -c python:gunicorn_conf 'app:create_app()'`.

Sync workers: each request is short and CPU-bound (parse, validate, one commit).
"""

import sys

from storage.config import Config, ConfigError
from storage.log import LayoutMismatch, check_layout

bind = "127.0.0.1:8787"
workers = 2
worker_class = "sync"
# A worker stuck longer than this is killed and replaced; no request takes close to it.
timeout = 30
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
