"""A full disk: refused with 507 and nothing acknowledged is lost; ingestion resumes once
there is room again. The disk is a real 1 MiB tmpfs, so SQLite meets a real ENOSPC."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from conftest import api_call, assert_error
from storage.config import Config
from storage.log import EventLog


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                   check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_full_disk_refuses_with_507_and_loses_no_acknowledged_event(
        small_disk, make_client, writer_process, writer):
    """With the in-process writer thread, and with the service's writer process."""
    db_path = small_disk / "analytics.db"
    socket = None
    if writer == "process":
        socket = writer_process(db_path)
    client = make_client(Config(internal_keys=("test-key",), db_path=str(db_path)),
                         writer_socket=socket)
    assert client.simulate_get("/health").status_code == 200  # opens and migrates the log
    filler = small_disk / "filler"
    free = 1024 * 1024 - sum(p.stat().st_size for p in small_disk.iterdir())
    filler.write_bytes(b"\0" * max(0, free - 160 * 1024))

    acknowledged: list[str] = []
    refused: list[str] = []
    for round_ in range(200):
        ids = [f"r{round_}-{i}" for i in range(50)]
        result = client.simulate_post("/track/batch",
                                      json={"events": [api_call(i) for i in ids]})
        if result.status_code == 200:
            acknowledged += ids
            continue
        assert_error(result, 507, "full")
        refused += ids
        single = client.simulate_post("/track/api-call", json=api_call("single-when-full",
                                                                         worker="w" * 4000))
        assert single.status_code in (200, 507)
        if single.status_code == 200:
            acknowledged.append("single-when-full")
        break
    assert refused, "the disk never filled up"

    log = EventLog(db_path)
    stored = {row["request_id"] for row in log.events()}
    assert set(acknowledged) <= stored
    assert not stored & set(refused)
    assert len(stored) == len(acknowledged)
    log.close()

    filler.unlink()
    result = client.simulate_post("/track/batch",
                                  json={"events": [api_call(i) for i in refused]})
    assert result.status_code == 200
    log = EventLog(db_path)
    assert log.count() == len(acknowledged) + len(refused)
    log.close()
