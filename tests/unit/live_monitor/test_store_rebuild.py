"""The control plane's rebuild of live windows from the store counts what the live monitor
counts for the same events (on a real DuckDB file), only for the versions and times the
guard needs, and only events from before the cutoff (the monitor counts the rest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from feedback.store import connect
from feedback.writer import write_batch
from schemas import CorrectionEvent, FeedbackEvent, InferenceEvent
from services.control_plane.live_rebuild import store_windows
from services.live_monitor.counting import LiveWindows, observe, split_key

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
WINDOW_S = 60


def answer(n: int, adapter: str | None, minutes: float, origin: str = "production"):
    return InferenceEvent(
        event_id=f"a{n}",
        occurred_at=T0 + timedelta(minutes=minutes),
        task="spam",
        input="in",
        output="ham",
        base_model="tiny",
        adapter_id=adapter,
        origin=origin,
    )


def signal(n: int, of: int, minutes: float, kind: str, **extra) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=f"f{n}",
        occurred_at=T0 + timedelta(minutes=minutes),
        task="spam",
        inference_id=f"a{of}",
        signal=kind,
        **extra,
    )


def test_the_store_counts_as_the_monitor_does(tmp_path) -> None:
    events = [
        answer(1, "cand", 0.5),
        answer(2, "cand", 1.5),
        answer(3, None, 0.2),
        answer(4, None, 2.5),
        answer(5, "older", 1.0),  # a version the guard does not need
        answer(6, "cand", 1.2, origin="import"),  # imports are not live traffic
        answer(7, "cand", -30),  # before the canary started
        signal(1, 1, 0.7, "thumbs_down"),
        signal(2, 2, 1.6, "rating", rating=2),
        signal(3, 3, 0.4, "thumbs_up"),
        signal(4, 4, 2.7, "rating", rating=5),
        signal(5, 2, 3.1, "edited", edited_output="spam"),
        signal(6, 1, 0.9, "accepted"),
        signal(7, 6, 1.3, "thumbs_down"),
        signal(8, 4, 9.0, "thumbs_down"),  # after the cutoff: the monitor's to count
        CorrectionEvent(
            event_id="c1",
            occurred_at=T0 + timedelta(minutes=2.2),
            task="spam",
            inference_id="a3",
            corrected_output="spam",
            reviewer="ana",
        ),
    ]
    db = connect(tmp_path / "store.duckdb")
    write_batch(db, events)
    db.execute(
        "INSERT INTO canaries (task, adapter_id, champion_id, policy, started_at) "
        "VALUES ('spam', 'cand', NULL, '{}', ?)",
        [T0.replace(tzinfo=None)],
    )
    cutoff = (T0 + timedelta(minutes=5)).replace(tzinfo=None)
    rebuilt = store_windows(db, window_s=WINDOW_S, before=cutoff)
    db.close()

    monitor = LiveWindows()
    for event in events:
        if event.occurred_at.replace(tzinfo=None) < cutoff:
            seen = observe(event.model_dump_json().encode(), WINDOW_S)
            if seen is not None:
                monitor.apply(seen)
    expected = {}
    for key, counts in monitor.counts.items():
        task, version, start = split_key(key)
        adapter = None if version == "base" else version
        if adapter in ("cand", None) and start >= T0.timestamp():
            expected[(task, adapter, start)] = counts
    assert rebuilt == expected
    assert rebuilt[("spam", "cand", int(T0.timestamp()) + 60)] == {
        "answers": 1,
        "low_ratings": 1,
        "ratings": 1,
    }
    assert ("spam", None, int(T0.timestamp()) + 120) in rebuilt  # the correction's window
