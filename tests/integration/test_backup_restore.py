"""``flywheel backup`` while the control plane ingests a steady stream, and ``flywheel restore``
into a new home that then starts; both also with the control plane stopped."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from feedback.store import connect
from schemas.topics import INFERENCE
from tests.integration.conftest import ControlPlaneProcess, create_token, stored
from tests.registry_fixtures import seed_registry
from training.adapter_files import verify_adapter
from training.registry import promote

pytestmark = pytest.mark.integration


def stream(bootstrap: str, stop: threading.Event) -> None:
    """About 1,000 inference events a second until ``stop`` is set."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10)
    occurred = datetime.now(UTC).isoformat()
    sent = 0
    while not stop.is_set():
        for _ in range(50):
            event = {
                "type": "inference",
                "event_id": f"bk-{sent:07d}",
                "occurred_at": occurred,
                "task": "spam",
                "input": f"email {sent}",
                "output": "ham",
                "base_model": "smollm2",
            }
            producer.send(INFERENCE, json.dumps(event).encode(), key=b"spam")
            sent += 1
        time.sleep(0.05)
    producer.flush(30)
    producer.close()


def event_ids(plane: ControlPlaneProcess, where: str = "true") -> set[str]:
    return {r[0] for r in plane.query(f"SELECT event_id FROM inferences WHERE {where}")}


def test_online_backup_under_load_restores_every_event_stored_before_it(control_plane, tmp_path):
    stop = threading.Event()
    sender = threading.Thread(target=stream, args=(control_plane.bootstrap, stop), daemon=True)
    sender.start()
    try:
        control_plane.wait_for(lambda s: stored(s, "inference") >= 2_000)
        began = datetime.now(UTC).replace(tzinfo=None)
        backed_up = control_plane.cli("backup", str(tmp_path / "backup"), timeout_s=120)
        assert backed_up.returncode == 0, backed_up.stderr
        in_backup = json.loads((tmp_path / "backup" / "manifest.json").read_text())["rows"]
        # ingest went on during and after the backup: the service was never stopped
        control_plane.wait_for(lambda s: stored(s, "inference") > in_backup["inferences"] + 500)
    finally:
        stop.set()
        sender.join(60)
    audit = control_plane.get("/v1/audit")
    assert any(e["action"] == "backup" and e["actor"] == "local-cli" for e in audit)
    assert control_plane.stop() == 0
    before_backup = event_ids(control_plane, f"ingested_at < '{began.isoformat()}'")
    assert len(before_backup) >= 2_000

    restored = ControlPlaneProcess(tmp_path / "restored-home", control_plane.bootstrap)
    restoring = restored.cli("restore", str(tmp_path / "backup"))
    assert restoring.returncode == 0, restoring.stderr
    in_restored = event_ids(restored)
    assert before_backup <= in_restored
    assert len(in_restored) < len(event_ids(control_plane)), "a copy from mid-stream"

    restored.start()
    try:
        status = restored.status()
        assert stored(status, "inference") >= len(in_restored)
    finally:
        assert restored.stop() == 0


def test_backup_api_needs_an_admin_and_an_empty_private_directory(control_plane, tmp_path):
    """The API writes where a caller says, so it only fills a directory that exists, is
    empty, lies outside the home and only the control plane's user can read."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    operator = create_token(control_plane, "operator")
    refused = control_plane.post("/v1/backup", {"directory": str(private)}, operator)
    assert refused.status_code == 403
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    used = tmp_path / "used"
    used.mkdir(mode=0o700)
    (used / "keep.txt").write_text("not a backup")
    for directory, reason in (
        (tmp_path / "missing", "does not exist; create it first"),
        (shared, "not private"),
        (used, "not an empty directory"),
        (control_plane.home / "bk", "inside FLYWHEEL_HOME"),
        (Path("backups/today"), "absolute path"),
    ):
        answer = control_plane.post("/v1/backup", {"directory": str(directory)})
        assert answer.status_code == 409 and reason in answer.json()["detail"], answer.text
    assert not (tmp_path / "missing").exists() and list(shared.iterdir()) == []
    assert (used / "keep.txt").read_text() == "not a backup"

    made = control_plane.post("/v1/backup", {"directory": str(private)})
    assert made.status_code == 200, made.text
    assert (private / "manifest.json").is_file() and (private / "flywheel.duckdb").is_file()


def seeded_home(root: Path) -> tuple[Path, str]:
    """A stopped home: task spam, two adapters on one snapshot, the first one champion."""
    home = root / "home"
    home.mkdir()
    connection = connect(home / "flywheel.duckdb")
    try:
        first, _ = seed_registry(connection, home)
        promote(connection, task="spam", adapter_id=first, actor="ops", action="promote", reason="")
    finally:
        connection.close()
    return home, first


def test_backup_with_the_control_plane_stopped_restores_into_a_new_home(tmp_path):
    home, champion = seeded_home(tmp_path)
    source = ControlPlaneProcess(home, bootstrap="127.0.0.1:9")  # nothing runs
    backed_up = source.cli("backup", str(tmp_path / "backup"))
    assert backed_up.returncode == 0, backed_up.stderr
    # the backup is all a restore needs: the original home may be gone
    home.rename(tmp_path / "gone")

    restored = ControlPlaneProcess(tmp_path / "elsewhere" / "home", bootstrap="127.0.0.1:9")
    assert restored.cli("restore", str(tmp_path / "backup")).returncode == 0

    ((live,),) = restored.query("SELECT adapter_id FROM champion_history WHERE until IS NULL")
    assert live == champion
    for adapter_id, path in restored.query("SELECT adapter_id, path FROM adapters"):
        assert Path(path) == (restored.home / "adapters" / adapter_id).resolve()
        verify_adapter(Path(path))
    ((snapshot_path,),) = restored.query("SELECT path FROM snapshots")
    assert Path(snapshot_path).is_relative_to(restored.home.resolve())
    assert Path(snapshot_path).is_file()
    assert restored.query("SELECT count(*) FROM inferences") == [(2,)]
    assert (restored.home / "flywheel.duckdb").stat().st_mode & 0o077 == 0


def test_restore_refuses_a_home_in_use_and_a_directory_that_is_no_backup(tmp_path):
    home, _ = seeded_home(tmp_path)
    plane = ControlPlaneProcess(home, bootstrap="127.0.0.1:9")
    assert plane.cli("backup", str(tmp_path / "backup")).returncode == 0
    before = (home / "flywheel.duckdb").read_bytes()

    into_used = plane.cli("restore", str(tmp_path / "backup"))
    assert into_used.returncode == 1
    assert "is not empty" in into_used.stderr and "new, empty directory" in into_used.stderr
    assert (home / "flywheel.duckdb").read_bytes() == before

    empty = ControlPlaneProcess(tmp_path / "new-home", bootstrap="127.0.0.1:9")
    not_a_backup = empty.cli("restore", str(tmp_path))
    assert not_a_backup.returncode == 1 and "not a complete Flywheel backup" in not_a_backup.stderr
    assert not (tmp_path / "new-home").exists()
