"""``flywheel promote`` and ``flywheel rollback`` with the control plane down make the same
champion change the running service makes: files verified, alias moved, fixed mistakes
remembered, all in one transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedback.store import connect
from services.broker import EmbeddedBroker
from tests.processes import ControlPlaneProcess
from tests.registry_fixtures import corrupt, seed_registry

pytestmark = pytest.mark.integration


def seeded_home(root: Path) -> tuple[Path, str, str]:
    """A FLYWHEEL_HOME whose store holds task spam, one fixed mistake and two adapters."""
    home = root / "flywheel-home"
    home.mkdir(parents=True)
    connection = connect(home / "flywheel.duckdb")
    try:
        first, second = seed_registry(connection, home)
    finally:
        connection.close()
    return home, first, second


def offline(home: Path) -> ControlPlaneProcess:
    """The CLI of a home whose control plane is not running (nothing listens)."""
    return ControlPlaneProcess(home, bootstrap="127.0.0.1:9")


def outcome(plane: ControlPlaneProcess) -> dict[str, list[tuple]]:
    """What a champion change leaves in the store, minus who made it and when."""
    return {
        "history": plane.query(
            "SELECT adapter_id, action, reason, until IS NULL FROM champion_history ORDER BY since"
        ),
        "regression": plane.query(
            "SELECT task, inference_id, reason FROM regression_examples ORDER BY inference_id"
        ),
        "audit": plane.query("SELECT action, task FROM audit_log ORDER BY logged_at"),
    }


def test_offline_promote_refuses_a_corrupted_adapter(tmp_path):
    home, first, second = seeded_home(tmp_path)
    plane = offline(home)
    assert plane.cli("promote", "spam", first).returncode == 0
    corrupt(home / "adapters", second)

    refused = plane.cli("promote", "spam", second)

    assert refused.returncode != 0 and "corrupted" in refused.stderr, refused.stderr
    assert plane.query("SELECT adapter_id FROM champion_history WHERE until IS NULL") == [(first,)]
    assert plane.query("SELECT action FROM audit_log ORDER BY logged_at") == [
        ("promote",),
        ("promote:refused",),
    ]


def test_offline_promote_and_rollback_change_the_store_as_the_service_does(
    tmp_path, broker: EmbeddedBroker
):
    online_home, first, second = seeded_home(tmp_path / "online")
    service = ControlPlaneProcess(online_home, broker.bootstrap)
    service.start()
    try:
        for adapter_id in (first, second):
            answer = service.post("/v1/tasks/spam/promote", {"adapter_id": adapter_id})
            assert answer.status_code == 200, answer.text
        assert service.post("/v1/tasks/spam/rollback", {}).status_code == 200
    finally:
        service.stop()

    offline_home, _, _ = seeded_home(tmp_path / "offline")
    plane = offline(offline_home)
    for adapter_id in (first, second):
        assert plane.cli("promote", "spam", adapter_id).returncode == 0
    assert plane.cli("rollback", "spam").returncode == 0

    offline_outcome = outcome(plane)
    assert offline_outcome["regression"] == [("spam", "i1", "fixed by " + _snapshot(plane))]
    assert offline_outcome["history"][-1] == (first, "rollback", "", True)
    assert offline_outcome == outcome(ControlPlaneProcess(online_home, broker.bootstrap))


def _snapshot(plane: ControlPlaneProcess) -> str:
    ((snapshot_id,),) = plane.query("SELECT DISTINCT snapshot_id FROM adapters")
    return f"{snapshot_id}: correction"
