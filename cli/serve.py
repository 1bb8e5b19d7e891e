"""`serve`: the service under gunicorn."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from storage.config import ConfigError
from storage.log import LogError, check_layout

from .options import load_config

if TYPE_CHECKING:
    pass


@click.command()
@click.option("--bind", default=None, metavar="HOST:PORT",
              help="Address to listen on (default 127.0.0.1:8787).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 2).")
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(bind: str | None, workers: int | None, gunicorn_args: tuple[str, ...]) -> None:
    """Run the service under gunicorn with the project's defaults.

    \b
    Example:
      INTERNAL_KEY_BINDING=dev-key analytics-worker serve --bind 127.0.0.1:8787
    Arguments after -- go to gunicorn as they are.
    """
    try:
        config = load_config()
        config.require_keys()
        check_layout(config.db_path, config.layout)
    except (ConfigError, LogError) as e:
        raise click.ClickException(str(e)) from None
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:gunicorn_conf"]
    if bind:
        argv += ["--bind", bind]
    if workers:
        argv += ["--workers", str(workers)]
    argv += [*gunicorn_args, "app:create_app()"]
    os.execv(sys.executable, argv)
