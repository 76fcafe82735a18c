"""A live champion whose negative-feedback rate jumps, under each drift policy, against one
real control plane (bundled broker, faust monitor, tiny model) shared by the file: with
``rollback`` the previous champion returns and the inference servers follow; with
``retrain`` a cycle starts. Every alert reaches a real local webhook as JSON, and the
webhook's secret URL appears neither in the body nor in any log."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from services.broker import EmbeddedBroker
from services.topics import ensure_topics
from tests.integration.learning_helpers import define_task, import_examples, import_more
from tests.integration.live_helpers import live_env, traffic
from tests.processes import ControlPlaneProcess, InferenceServerProcess, create_token, free_port

pytestmark = pytest.mark.integration
WINDOW_S = 5
SECRET = "s3cret-hook-key"


class Webhook:
    """A real HTTP server on loopback that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server calls it by this name
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:  # keep pytest's output clean
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        # The secret sits where hooks keep theirs: in the path and in the query.
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/{SECRET}?key={SECRET}"

    def alerts_of(self, task: str) -> list[dict]:
        return [b for b in map(json.loads, self.bodies) if b["task"] == task]


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.server.shutdown()


@pytest.fixture(scope="module")
def plane(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, webhook: Webhook
) -> Iterator[ControlPlaneProcess]:
    root = tmp_path_factory.mktemp("drift")
    broker = EmbeddedBroker(free_port(), log_file=root / "broker.log")
    broker.start()
    ensure_topics(broker.bootstrap, partitions=2)
    (root / "home").mkdir()
    plane = ControlPlaneProcess(
        root / "home",
        broker.bootstrap,
        extra_env=live_env(tiny_model_dir, WINDOW_S, FLYWHEEL_ALERT_WEBHOOK_URL=webhook.url),
    )
    plane.start()
    yield plane
    plane.stop()
    broker.stop()


def _champion_after_cycle(plane: ControlPlaneProcess, tmp_path: Path, task: str, **spec) -> str:
    define_task(plane, tmp_path, task, **spec)
    result = plane.cli("cycle", "run", task, "--wait")
    assert result.returncode == 0, result.stdout + result.stderr
    return str(plane.get(f"/v1/tasks/{task}")["champion"])


def _negative_rate_jumps(plane: ControlPlaneProcess, task: str, champion: str) -> None:
    """A first window at 10% thumbs-down, the next at 60%."""
    time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.3)  # a window wholly after the promotion
    traffic(plane.bootstrap, task, champion, answers=60, thumbs_down=6)
    time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.3)
    traffic(plane.bootstrap, task, champion, answers=60, thumbs_down=36)


def _no_secret_anywhere(plane: ControlPlaneProcess, webhook: Webhook) -> None:
    token = plane.admin_token
    for body in webhook.bodies:
        assert SECRET.encode() not in body and token.encode() not in body
    logs = [plane.log_path, *plane.home.rglob("*.log*")]
    assert len(logs) > 1, logs
    for log in logs:
        assert SECRET not in log.read_text(errors="replace"), log


def test_rollback_policy_restores_the_previous_champion_on_every_server(
    plane: ControlPlaneProcess, webhook: Webhook, tmp_path: Path
) -> None:
    define_task(plane, tmp_path, "roll", drift_policy="rollback")
    import_examples(plane, tmp_path, "roll")
    first = _champion_after_cycle(plane, tmp_path, "roll", drift_policy="rollback")
    import_more(plane, tmp_path, "roll", stored=60)
    second = _champion_after_cycle(plane, tmp_path, "roll", drift_policy="rollback", max_steps=6)
    assert first != second
    server = InferenceServerProcess(plane)
    server.start()
    try:
        plane.wait_until(server.health, lambda h: h["champions"].get("roll") == second, 30)
        _negative_rate_jumps(plane, "roll", second)
        plane.wait_until(lambda: plane.get("/v1/tasks/roll")["champion"], lambda c: c == first, 60)
        history = plane.get("/v1/tasks/roll")["champion_history"]
        assert (history[-1]["action"], history[-1]["actor"]) == ("rollback", "live-guard")
        assert "worse than its first_window" in history[-1]["reason"]
        plane.wait_until(server.health, lambda h: h["champions"].get("roll") == first, 30)
        answer = httpx.post(
            f"{server.url}/v1/generate",
            headers={"Authorization": f"Bearer {create_token(plane, 'app')}"},
            json={"task": "roll", "input": "wire the money"},
            timeout=30,
        )
        assert answer.json()["adapter_id"] == first
    finally:
        server.stop()
    (alert,) = [a for a in plane.status()["live_alerts"] if a["task"] == "roll"]
    assert (alert["adapter_id"], alert["action"]) == (second, "rollback")
    (sent,) = webhook.alerts_of("roll")
    assert (sent["adapter_id"], sent["policy"], sent["baseline"]) == (
        second,
        "rollback",
        "first_window",
    )
    assert sent["candidate"]["k"] == 36 and sent["reference"]["k"] == 6 and sent["low"] > 0
    _no_secret_anywhere(plane, webhook)


def test_retrain_policy_starts_a_cycle(
    plane: ControlPlaneProcess, webhook: Webhook, tmp_path: Path
) -> None:
    define_task(plane, tmp_path, "again", drift_policy="retrain")
    import_examples(plane, tmp_path, "again")
    champion = _champion_after_cycle(plane, tmp_path, "again", drift_policy="retrain")
    (by_hand,) = plane.get("/v1/cycles?task=again")
    assert by_hand["trigger"] != "drift"
    import_more(plane, tmp_path, "again", stored=60)  # what the retraining learns from
    _negative_rate_jumps(plane, "again", champion)
    cycles = plane.wait_until(
        lambda: plane.get("/v1/cycles?task=again"), lambda cs: len(cs) == 2, 60
    )
    assert sorted(c["trigger"] for c in cycles) == sorted(["drift", by_hand["trigger"]])
    plane.wait_until(  # let it finish: the file's control plane stops after this test
        lambda: plane.get("/v1/cycles?task=again"),
        lambda cs: all(c["state"] in ("decided", "failed") for c in cs),
        120,
    )
    (sent,) = webhook.alerts_of("again")
    assert (sent["adapter_id"], sent["policy"]) == (champion, "retrain")
    assert "drift:alert" in plane.cli("audit", "--task", "again").stdout
    _no_secret_anywhere(plane, webhook)
