"""The layers of the house (setup.cfg's `[importlinter]` contracts), run with import-linter:
intake does no I/O, nothing under storage/ imports the web or the CLI, the wings depend
downward only, and the SQL engine knows nothing of Cloudflare, the writer or replay."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / "setup.cfg")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_layers_hold() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout, done.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("storage/intake/layouts.py", "import sqlite3", "intake is a body in and rows out: no I/O"),
    ("storage/log/errors.py", "import falcon", "Nothing under storage/ imports falcon, click"),
    ("storage/log/errors.py", "from ..replay import sink", "The wings depend downward only"),
    ("storage/writer/wire.py", "from ..services import Services", "The wings depend downward only"),
    ("storage/query/aesql/errors.py", "from .. import cloudflare",
     "The SQL engine imports nothing of Cloudflare"),
])
def test_an_import_against_the_layers_breaks_its_contract(tmp_path: Path, module: str,
                                                          line: str, contract: str) -> None:
    """The same contracts on a copy of the code with one import added: it must fail, and
    name the contract it broke."""
    for part in ("storage", "cli"):
        shutil.copytree(ROOT / part, tmp_path / part,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "setup.cfg", tmp_path / "setup.cfg")
    with open(tmp_path / module, "a") as f:
        f.write(f"\n{line}  # added by the test\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    broken = [row for row in done.stdout.splitlines() if row.endswith("BROKEN")]
    assert len(broken) == 1 and broken[0].startswith(contract), done.stdout
