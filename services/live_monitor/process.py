"""The live monitor as a child process of the control plane.

faust runs its own event loop, signal handlers and logging; a child process keeps them out
of the control plane's loop. The control plane starts it, restarts it if it dies (it then
replays the topics, see ``services.live_monitor.app``) and stops it on shutdown.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

log = logging.getLogger(__name__)


class LiveMonitorProcess:
    def __init__(self, *, bootstrap: str, log_file: Path) -> None:
        self.bootstrap = bootstrap
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        # The bundled broker's address is not in the environment; the child must use it.
        env = {**os.environ, "FLYWHEEL_KAFKA_BOOTSTRAP": self.bootstrap}
        with open(self.log_file, "ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.live_monitor"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        log.info("live monitor started (pid %d, log %s)", self.process.pid, self.log_file)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure_running(self) -> None:
        """Start the monitor again if it exited; say so in the log with its exit status."""
        if self.process is not None and not self.running:
            log.warning(
                "live monitor exited with status %s; restarting it (see %s)",
                self.process.returncode,
                self.log_file,
            )
            self.restarts += 1
            self.start()

    def stop(self, timeout_s: float = 15.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
