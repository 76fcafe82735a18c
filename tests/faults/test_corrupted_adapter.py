"""A corrupted or truncated adapter never goes live: the control plane refuses to promote it,
an inference server refuses to load it, the champion keeps serving, and operators are told."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from kafka import KafkaProducer

from schemas.topics import PROMOTIONS
from tests.integration.learning_helpers import define_task, import_examples
from tests.integration.test_serving import more_examples
from tests.processes import InferenceServerProcess, create_token

pytestmark = pytest.mark.integration


@pytest.fixture
def plane(model_plane):
    return model_plane


def test_corrupted_adapter_is_refused_and_the_champion_keeps_serving(plane, tmp_path):
    define_task(plane, tmp_path, "money")
    import_examples(plane, tmp_path, "money")
    assert plane.cli("cycle", "run", "money", "--wait").returncode == 0
    champion = plane.get("/v1/tasks/money")["champion"]
    server = InferenceServerProcess(plane)
    server.start()
    try:
        define_task(plane, tmp_path, "money", gate={"mode": "manual"})
        more_examples(plane, tmp_path)
        result = plane.cli("cycle", "run", "money", "--wait")
        assert "await_approval" in result.stdout, result.stdout + result.stderr
        cycle = plane.get("/v1/cycles?task=money")[0]
        weights = plane.home / "adapters" / cycle["adapter_id"] / "adapter_model.safetensors"
        weights.write_bytes(weights.read_bytes()[: len(weights.read_bytes()) // 2])

        approved = plane.post(f"/v1/cycles/{cycle['cycle_id']}/approve", {})
        assert approved.status_code == 409 and "corrupted" in approved.json()["detail"]
        assert plane.get("/v1/tasks/money")["champion"] == champion
        refused = plane.cli("promote", "money", cycle["adapter_id"])
        assert refused.returncode != 0 and "corrupted" in refused.stderr

        # A promotion message for it anyway (say, from a control plane whose copy was whole):
        # the server checks the files itself, keeps the champion and tells the operators.
        producer = KafkaProducer(bootstrap_servers=plane.bootstrap)
        producer.send(
            PROMOTIONS,
            key=b"money",
            value=json.dumps(
                {
                    "task": "money",
                    "adapter_id": cycle["adapter_id"],
                    "action": "promote",
                    "actor": "elsewhere",
                    "at": datetime.now(UTC).isoformat(),
                }
            ).encode(),
        )
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 30
        while not server.health()["refused_adapters"] and time.monotonic() < deadline:
            time.sleep(0.1)
        health = server.health()
        assert health["refused_adapters"][0]["adapter_id"] == cycle["adapter_id"]
        assert health["champions"]["money"] == champion
        app = create_token(plane, "app")
        answer = httpx.post(
            f"{server.url}/v1/generate",
            json={"task": "money", "input": "pay"},
            headers={"Authorization": f"Bearer {app}"},
            timeout=30,
        )
        assert answer.status_code == 200 and answer.json()["adapter_id"] == champion
        audit = plane.get("/v1/audit?task=money")
        actions = {entry["action"] for entry in audit}
        assert {"approve:refused", "promote:refused", "alert:adapter_refused"} <= actions
    finally:
        server.stop()
