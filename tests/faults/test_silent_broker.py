"""A broker that accepts connections and never answers: the SDK's callers and the inference
server's answers must not wait on it, and every event still ends up spooled to disk."""

from __future__ import annotations

import json
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedback.client import FlywheelClient
from feedback.spool import Spool
from tests.integration.in_process_server import served_in_process
from tests.integration.learning_helpers import define_task

pytestmark = pytest.mark.integration


class SilentListener:
    """A loopback TCP listener that accepts every connection, reads what it is sent and never
    writes a byte: a broker that hangs without refusing connections."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self._stop = threading.Event()
        self._connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, name="silent-broker", daemon=True)
        self._thread.start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self._socket.getsockname()[1]}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            self._connections.append(connection)
            threading.Thread(target=self._swallow, args=(connection,), daemon=True).start()

    def _swallow(self, connection: socket.socket) -> None:
        connection.settimeout(0.2)
        while not self._stop.is_set():
            try:
                if not connection.recv(65536):
                    return
            except TimeoutError:
                continue
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for connection in self._connections:
            connection.close()
        self._socket.close()


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.close()


def test_emit_never_waits_on_a_broker_that_never_answers(silent, tmp_path: Path):
    client = FlywheelClient(silent.bootstrap, spool_dir=tmp_path / "spool", batch_size=100)
    waits, ids = [], []
    for i in range(2_000):  # many full batches: each wakes the sender
        started = time.perf_counter()
        ids.append(
            client.log_inference(task="spam", input=f"mail {i}", output="ham", base_model="m")
        )
        waits.append(time.perf_counter() - started)
        if i % 500 == 0:
            time.sleep(0.3)  # let the background sender get stuck on the silent broker
    # One wait on the broker costs seconds (its bootstrap timeout is 2 s); the bound on the
    # slowest call leaves room for a busy shared machine, the median shows the usual cost.
    assert statistics.median(waits) < 0.005 and max(waits) < 0.5, (
        f"median {statistics.median(waits):.4f} s, slowest {max(waits):.2f} s"
    )

    started = time.monotonic()
    result = client.close(timeout_s=2)
    assert time.monotonic() - started < 10, "close must give up on a silent broker and spool"
    assert result.sent == 0
    assert spooled_ids(tmp_path / "spool") == set(ids)  # nothing lost: every event is on disk


def spooled_ids(directory: Path) -> set[str]:
    return {
        json.loads(value)["event_id"]
        for _, records in Spool(directory).drain()
        for _, _, value in records
    }


def test_answers_return_quickly_while_the_broker_never_answers(
    model_plane, tiny_model_dir, silent, tmp_path: Path
):
    define_task(model_plane, tmp_path, "money")
    spool = tmp_path / "spool"
    latencies, answered = [], set()
    with served_in_process(
        model_plane, tiny_model_dir, bootstrap=silent.bootstrap, spool_dir=spool
    ) as server:
        for i in range(30):
            started = time.perf_counter()
            response = server.http.post(
                "/v1/generate", json={"task": "money", "input": f"request {i}: pay the invoice"}
            )
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
            answered.add(response.json()["inference_id"])
            time.sleep(0.05)  # spread over 1.5 s: the sender is mid-attempt for most of them
    assert max(latencies) < 1.0, f"slowest answer took {max(latencies):.2f} s"
    assert spooled_ids(spool) == answered  # every answer captured, on disk until Kafka is back
