"""The live monitor: a faust-streaming worker that keeps windowed outcome counts per task and
adapter version, and publishes them on ``flywheel.live_counts``.

One agent reads the inference, feedback and correction topics and folds each event into
``counting.LiveWindows`` (the answer-to-version join and the tumbling windows); a timer
publishes the windows that changed. The newest message of a window carries its totals so
far, so a reader keeps the latest one per window.

State survives a restart by replay: each start joins a fresh consumer group, reads the three
topics from their beginning and counts everything again (then the totals it publishes equal
what it had published before, plus what is new). faust's changelog tables were tried first:
their recovery stops at the broker's "latest offset", which the bundled broker (Tansu)
reports short of the true end, so the last updates of a window were lost on restart. The
topics' retention bounds what a restart can recount; the control plane also rebuilds the
windows of events it cannot replay from the store (``services.control_plane.live_rebuild``).

Run one worker (faust's group_by with tables across several workers hung in tests here).
Its web server is off: nothing listens on any address.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from schemas.topics import CORRECTIONS, FEEDBACK, INFERENCE, LIVE_COUNTS
from services.live_monitor.counting import SEPARATOR, LiveWindows, live_counts_message, observe

log = logging.getLogger(__name__)

APP_ID = "flywheel-live-monitor"


def build_app(
    *, bootstrap: str, partitions: int, window_s: int, publish_interval_s: float, data_dir: str
) -> faust.App:
    """The monitor's faust app: one agent over the event topics, one publishing timer."""
    app = faust.App(
        f"{APP_ID}-{time.time_ns()}",  # a fresh group: every start replays the topics
        broker=f"kafka://{bootstrap}",
        datadir=data_dir,
        web_enabled=False,  # no HTTP server at all (faust's default binds 0.0.0.0:6066)
        broker_session_timeout=6,  # the bundled broker joins a group in about half of it
        topic_partitions=partitions,
        topic_replication_factor=1,
        topic_disable_leader=True,  # one worker: no leader topic per start
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",  # no transactional producers on Tansu
    )
    events = app.topic(
        INFERENCE, FEEDBACK, CORRECTIONS, key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    published = app.topic(LIVE_COUNTS, value_serializer="raw", key_serializer="raw")
    windows = LiveWindows()

    @app.agent(events)
    async def monitor(stream: Any) -> None:
        async for raw in stream:
            seen = observe(raw, window_s)
            if seen is not None:
                windows.apply(seen)

    @app.timer(interval=publish_interval_s)
    async def publish() -> None:
        for key, counts in windows.take_changed():
            task = key.split(SEPARATOR, 1)[0]
            await published.send(
                key=task.encode(), value=live_counts_message(key, counts, window_s)
            )

    app.live_windows = windows  # type: ignore[attr-defined]  # for tests and the benchmark
    return app
