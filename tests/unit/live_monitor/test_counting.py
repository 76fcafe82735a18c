"""The live monitor's counting: windows, the late join, what is not counted."""

from __future__ import annotations

import json

from services.live_monitor.counting import LiveWindows, live_counts_message, observe, window_start

WHEN = "2026-03-01T10:00:30+00:00"


def _raw(**event: object) -> bytes:
    return json.dumps({"occurred_at": WHEN, "task": "t", **event}).encode()


def _answer(inference_id: str, adapter: str | None = "a1", **extra: object) -> bytes:
    return _raw(type="inference", event_id=inference_id, adapter_id=adapter, **extra)


def _feedback(inference_id: str, signal: str, **extra: object) -> bytes:
    return _raw(
        type="feedback",
        event_id=f"f-{inference_id}",
        inference_id=inference_id,
        signal=signal,
        **extra,
    )


def _fold(*records: bytes, window_s: int = 60) -> LiveWindows:
    windows = LiveWindows()
    for raw in records:
        seen = observe(raw, window_s)
        if seen is not None:
            windows.apply(seen)
    return windows


def test_outcomes_count_against_the_version_of_their_answer() -> None:
    windows = _fold(
        _answer("i1"),
        _answer("i2", adapter=None),
        _feedback("i1", "thumbs_down"),
        _feedback("i2", "thumbs_up"),
        _feedback("i2", "rating", rating=1),
        _raw(
            type="correction", event_id="c1", inference_id="i1", corrected_output="x", reviewer="r"
        ),
    )
    start = window_start(WHEN, 60)
    assert windows.counts == {
        f"t|a1|{start}": {"answers": 1, "thumbs_down": 1, "corrected": 1},
        f"t|base|{start}": {"answers": 1, "thumbs_up": 1, "low_ratings": 1, "ratings": 1},
    }


def test_feedback_that_arrives_before_its_answer_is_counted_when_the_answer_comes() -> None:
    windows = _fold(_feedback("late", "thumbs_down"), _feedback("late", "edited"))
    assert windows.counts == {} and len(windows.waiting["late"]) == 2
    seen = observe(_answer("late", adapter="a2"), 60)
    assert seen is not None
    windows.apply(seen)
    (counts,) = windows.counts.values()
    assert counts == {"answers": 1, "thumbs_down": 1, "edited": 1}
    assert windows.waiting == {}


def test_imports_and_malformed_records_are_not_counted() -> None:
    windows = _fold(
        _answer("old", origin="import"),
        b"{not json",
        json.dumps({"type": "inference"}).encode(),
        _feedback("x", "unknown-signal"),
    )
    assert windows.counts == {} and windows.waiting == {}


def test_windows_are_tumbling_and_published_once_per_change() -> None:
    windows = _fold(_answer("i1"), _answer("i2"), window_s=20)
    changed = windows.take_changed()
    assert len(changed) == 1 and windows.take_changed() == []
    key, counts = changed[0]
    message = json.loads(live_counts_message(key, counts, 20))
    assert message == {
        "task": "t",
        "adapter_id": "a1",
        "window_start": window_start(WHEN, 20),
        "window_s": 20,
        "counts": {"answers": 2},
    }
    assert window_start(WHEN, 20) % 20 == 0 and window_start(WHEN, 20) != window_start(WHEN, 60)
