"""Flywheel's processes as an operator runs them (``flywheel up``, ``flywheel serve``), for
tests and fixtures."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ControlPlaneProcess:
    """Runs ``flywheel up`` as a child process, as an operator would."""

    def __init__(
        self, home: Path, bootstrap: str | None, extra_env: dict[str, str] | None = None
    ) -> None:
        """``bootstrap`` None: the control plane starts its own bundled broker, on a free
        port, as ``flywheel up`` does without ``FLYWHEEL_KAFKA_BOOTSTRAP``."""
        self.home = home
        self.embedded_broker_port = free_port() if bootstrap is None else None
        self.bootstrap = bootstrap or f"127.0.0.1:{self.embedded_broker_port}"
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = home / "control-plane.out"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        broker = (
            {"FLYWHEEL_EMBEDDED_BROKER_PORT": str(self.embedded_broker_port)}
            if self.embedded_broker_port is not None
            else {"FLYWHEEL_KAFKA_BOOTSTRAP": self.bootstrap}
        )
        environment = {k: v for k, v in os.environ.items() if k != "FLYWHEEL_KAFKA_BOOTSTRAP"}
        return {
            **environment,
            "FLYWHEEL_HOME": str(self.home),
            **broker,
            "FLYWHEEL_API_PORT": str(self.port),
            "FLYWHEEL_PARTITIONS": "2",
            **self.extra_env,
        }

    def start(self, timeout_s: float = 60.0) -> None:
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli.main", "up"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"control plane exited: {self.log_path.read_text()[-3000:]}")
            if self._healthy() and (self.home / "run" / "cli.token").exists():
                return
            time.sleep(0.2)
        raise RuntimeError(f"control plane did not start: {self.log_path.read_text()[-3000:]}")

    def _healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    @property
    def admin_token(self) -> str:
        return (self.home / "run" / "cli.token").read_text().strip()

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin_token}"}

    def status(self) -> dict[str, Any]:
        return self.get("/v1/status")

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", headers=self.headers(), timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any, token: str | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}{path}", json=body, headers=self.headers(token), timeout=30)

    def cli(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        """Run the flywheel CLI against this control plane, as an operator would."""
        return subprocess.run(
            [sys.executable, "-m", "services.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )

    def wait_until(
        self, fetch: Callable[[], Any], predicate: Callable[[Any], bool], timeout_s: float = 120
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = fetch()
            if predicate(value):
                return value
            time.sleep(0.3)
        raise AssertionError(f"condition not met within {timeout_s} s; last value: {value}")

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 60) -> dict:
        """Poll /v1/status until ``predicate(status)`` holds."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.status()
            if predicate(last):
                return last
            time.sleep(0.25)
        raise AssertionError(f"condition not met within {timeout_s} s; last status: {last}")

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def query(self, sql: str) -> list[tuple]:
        """Read the DuckDB file directly; the control plane must be stopped first."""
        connection = duckdb.connect(str(self.home / "flywheel.duckdb"), read_only=True)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()


@contextmanager
def running(plane: ControlPlaneProcess, *, graceful: bool = False) -> Iterator[ControlPlaneProcess]:
    """``plane`` started; at the end stopped if the code inside left it running (killed, or
    with ``graceful`` sent SIGTERM): a test may stop it itself to check how it stops."""
    plane.start()
    try:
        yield plane
    finally:
        if plane.process is not None and plane.process.poll() is None:
            if graceful:
                plane.stop()
            else:
                plane.kill()


class InferenceServerProcess:
    """Runs ``flywheel serve`` beside a control plane, as an operator would."""

    def __init__(
        self,
        plane: ControlPlaneProcess,
        extra_env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.plane = plane
        self.port = free_port()
        self.extra_env = extra_env or {}
        self.args = args  # ("--backend", "vllm"): the gateway in front of vLLM
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = plane.home / f"server-{self.port}.out"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> None:
        env = {**self.plane.env, "FLYWHEEL_SERVE_PORT": str(self.port), **self.extra_env}
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli.main", "serve", *self.args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            if self.health().get("status") == "ok":
                return
            time.sleep(0.2)
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def health(self) -> dict[str, Any]:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).json()
        except httpx.HTTPError:
            return {}

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def create_token(plane: ControlPlaneProcess, role: str, name: str | None = None) -> str:
    """A new token; without a name the control plane gives it a unique one."""
    response = plane.post("/v1/tokens", {"role": role} | ({"name": name} if name else {}))
    assert response.status_code == 200, response.text
    return response.json()["token"]


def stored(status: dict[str, Any], event_type: str) -> int:
    return int(status["events"][event_type]["stored"])


def rejected(status: dict[str, Any], event_type: str) -> int:
    return int(status["events"][event_type]["rejected"])


def dump(event: Any) -> str:
    return json.dumps(event)
