"""``flywheel gc`` through the running control plane and on its scheduler; roles of POST /v1/gc.
(What a collection keeps and removes is in tests/unit/test_garbage_collection.py.)"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.conftest import ControlPlaneProcess, create_token

pytestmark = pytest.mark.integration


def orphan(home: Path, name: str = ".adapter-k1ll3d") -> Path:
    """A scratch directory as a training worker killed while saving leaves it."""
    scratch = home / "adapters" / name
    scratch.mkdir(parents=True)
    (scratch / "adapter_model.safetensors").write_bytes(b"half-written weights")
    return scratch


def gc_json(plane: ControlPlaneProcess, *args: str) -> dict:
    result = plane.cli("gc", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_gc_through_the_running_control_plane_dry_run_first(control_plane):
    scratch = orphan(control_plane.home)

    preview = gc_json(control_plane, "--dry-run")
    assert preview["dry_run"] is True and preview["orphan_dirs"] == [scratch.name]
    assert scratch.is_dir()

    done = gc_json(control_plane)
    assert done["orphan_dirs"] == [scratch.name]
    assert not scratch.exists()
    (entry,) = [e for e in control_plane.get("/v1/audit") if e["action"] == "gc"]
    assert entry["actor"] == "local-cli"
    assert entry["details"]["orphan_dirs"] == [scratch.name]


def test_gc_needs_an_operator(control_plane):
    app = create_token(control_plane, "app")
    operator = create_token(control_plane, "operator")
    assert control_plane.post("/v1/gc", {"dry_run": True}, app).status_code == 403
    answer = control_plane.post("/v1/gc", {"dry_run": True}, operator)
    assert answer.status_code == 200 and answer.json()["dry_run"] is True


def test_the_scheduler_collects_orphans_by_itself(home, broker):
    plane = ControlPlaneProcess(home, broker.bootstrap, extra_env={"FLYWHEEL_GC_INTERVAL_S": "1"})
    plane.start()
    try:
        scratch = orphan(home)
        deadline = time.monotonic() + 20
        while scratch.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not scratch.exists()
        audit = plane.wait_until(
            lambda: plane.get("/v1/audit"), lambda a: any(e["action"] == "gc" for e in a)
        )
        assert [e["actor"] for e in audit if e["action"] == "gc"] == ["scheduler"]
    finally:
        assert plane.stop() == 0
