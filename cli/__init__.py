"""The `analytics-worker` command line: a thin layer over `storage`,
its commands grouped as `--help` shows them (one module a group).

Every command reads the same environment as the server (SPEC §8), so
`ANALYTICS_DB=… analytics-worker …` works on the server's log.
"""

from __future__ import annotations

import importlib

import click

# Each command by name, and where it lives: its module is imported when it runs (or when
# --help lists them all), so that a command starts without the others' imports (`dev`
# starts before wrangler does, and every second counts there).
COMMANDS = {
    "serve": "serve:serve",
    "dev": "dev:dev",
    "import": "events:import_",
    "export": "events:export",
    "query": "query:query",
    "mirror-rebuild": "query:mirror_rebuild",
    "status": "replay:status",
    "replay": "replay:replay_command",
    "audit": "replay:audit",
}
SECTIONS = (
    ("Run the service", ("serve", "dev")),
    ("Events in and out", ("import", "export")),
    ("Query", ("query", "mirror-rebuild")),
    ("Replay and audit", ("status", "replay", "audit")),
)


class Sections(click.Group):
    """A group whose --help lists its commands by section, in the order given, and that
    imports a command's module only when it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for _title, names in SECTIONS for name in names]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, _, attribute = COMMANDS[cmd_name].partition(":")
        return getattr(importlib.import_module(f".{module}", __name__), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        for title, names in SECTIONS:
            commands = [self.get_command(ctx, name) for name in names]
            rows = [(c.name, c.get_short_help_str(formatter.width - 6 - len(c.name)))
                    for c in commands if c is not None and not c.hidden]
            with formatter.section(title):
                formatter.write_dl(rows)


@click.group(cls=Sections, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="analytics-worker")
def main() -> None:
    """Telemetry ingest with a local SQLite event log, replayed to Cloudflare
    Workers Analytics Engine. Settings come from the environment (see the README)."""
