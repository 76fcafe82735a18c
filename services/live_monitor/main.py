"""Run the live monitor's faust worker (``python -m services.live_monitor``).

``flywheel up`` starts it as a child process (``services.live_monitor.process``) so faust's
own event loop, signal handling and logging stay out of the control plane's loop.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import faust

from services.live_monitor.app import build_app
from services.settings import Settings

STOP_GRACE_S = 10.0
"""How long a clean stop may take once the parent is gone, before the process just exits."""


def stop_with_parent(interval_s: float = 1.0) -> None:
    """SIGTERM ourselves when the process that started us is gone (a control plane killed
    with SIGKILL cannot stop its children), so no monitor outlives its control plane."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(STOP_GRACE_S)  # faust may hang on a broker that died with the parent
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; faust's worker stops its agent and tables cleanly."""
    stop_with_parent()
    data_dir = settings.run_dir / "live-monitor"
    data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(
        bootstrap=settings.bootstrap,
        partitions=settings.partitions,
        window_s=settings.live_window_s,
        publish_interval_s=settings.live_publish_interval_s,
        data_dir=str(data_dir),
    )
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
