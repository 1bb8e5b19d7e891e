"""The README stays true: its settings table matches the code, and its run command starts
the service on the embedded defaults."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import httpx
import pytest

from conftest import HTTP, ROOT, free_port
from storage.config import SETTINGS

README = (ROOT / "README.md").read_text()


def documented_settings() -> dict[str, str]:
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.+?) \|", README, flags=re.M)
    return {name: default.strip("`") for name, default in rows}


def test_every_setting_is_documented_with_its_default():
    documented = documented_settings()
    assert set(documented) == {s.env for s in SETTINGS}
    for setting in SETTINGS:
        default = setting.default
        if default in ("", ()):
            assert documented[setting.env].startswith("("), setting.env
        else:
            assert documented[setting.env] == str(default), setting.env


def test_readme_starts_with_the_run_and_test_commands():
    block = re.search(r"```sh\n(.*?)```", README, flags=re.S).group(1).splitlines()
    assert block[0].startswith("INTERNAL_KEY_BINDING=dev-key ./run.sh")
    assert block[1].startswith("./test.sh")
    assert (ROOT / ".ci" / "run").read_text().count("./test.sh") == 1


@pytest.mark.gunicorn
def test_documented_run_command_serves_on_the_embedded_defaults(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANALYTICS_", "CLOUDFLARE_", "INTERNAL_KEY"))}
    # Only the log's place and the port differ from the README's command.
    env.update(INTERNAL_KEY_BINDING="dev-key", ANALYTICS_DB=str(tmp_path / "a.db"))
    proc = subprocess.Popen([str(ROOT / "run.sh"), "--bind", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if HTTP.get(url + "/health", timeout=1).json() == {"status": "ok"}:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("the documented run command did not start the service")
        response = HTTP.post(url + "/track/api-call", headers={"X-Internal-Auth-Key": "dev-key"},
                             json={"worker": "w", "endpoint": "/e", "latencyMs": 1,
                                    "success": True})
        assert response.json() == {"success": True}
        assert (tmp_path / "a.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(15)
