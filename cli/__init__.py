"""The `analytics-worker` command line: a thin layer over `storage`,
its commands grouped as `--help` shows them (one module a group).

Every command reads the same environment as the server (SPEC §8), so
`ANALYTICS_DB=… analytics-worker …` works on the server's log.
"""

from __future__ import annotations

import click

from .dev import dev
from .events import export, import_
from .query import mirror_rebuild, query
from .replay import audit, replay_command, status
from .serve import serve

SECTIONS = (
    ("Run the service", (serve, dev)),
    ("Events in and out", (import_, export)),
    ("Query", (query, mirror_rebuild)),
    ("Replay and audit", (status, replay_command, audit)),
)


class Sections(click.Group):
    """A group whose --help lists its commands by section, in the order given."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, commands in SECTIONS:
            rows = [(c.name, c.get_short_help_str(formatter.width - 6 - len(c.name)))
                    for c in commands if not c.hidden]
            with formatter.section(title):
                formatter.write_dl(rows)


@click.group(cls=Sections, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="analytics-worker")
def main() -> None:
    """Telemetry ingest with a local SQLite event log, replayed to Cloudflare
    Workers Analytics Engine. Settings come from the environment (see the README)."""


for _title, _commands in SECTIONS:
    for _command in _commands:
        main.add_command(_command)
