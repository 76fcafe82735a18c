"""Run the live monitor's faust worker (``python -m services.live_monitor``).

``flywheel up`` starts it as a child process (``services.live_monitor.process``) so faust's
own event loop, signal handling and logging stay out of the control plane's loop.
"""

from __future__ import annotations

import faust

from services.live_monitor.app import build_app
from services.settings import Settings


def run(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT; faust's worker stops its agent and tables cleanly."""
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


if __name__ == "__main__":
    run(Settings())
