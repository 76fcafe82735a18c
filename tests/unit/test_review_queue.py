"""The reviewer queue's order of need and its leases, on a real DuckDB file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import feedback.review_queue as queue
from feedback.console import drift, ground_truth_growth
from feedback.store import connect
from feedback.writer import write_batch
from schemas import CorrectionEvent, FeedbackEvent, InferenceEvent

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
LOW = -0.7


@pytest.fixture
def db(tmp_path):
    connection = connect(tmp_path / "store.duckdb")
    yield connection
    connection.close()


@pytest.fixture
def clock(monkeypatch):
    """The queue's clock, moved by hand."""
    now = {"t": datetime(2026, 11, 1, 13, 0)}
    monkeypatch.setattr(queue, "_now", lambda: now["t"])
    return now


def answer(
    event_id: str,
    logprob: float | None,
    minute: int = 0,
    adapter: str | None = None,
    output: str = "ham",
) -> InferenceEvent:
    return InferenceEvent(
        event_id=event_id,
        occurred_at=T0 + timedelta(minutes=minute),
        task="spam",
        input=f"email {event_id}",
        output=output,
        base_model="smollm2",
        mean_logprob=logprob,
        adapter_id=adapter,
    )


def signal(event_id: str, inference_id: str, kind: str, **extra) -> FeedbackEvent:
    return FeedbackEvent(
        event_id=event_id,
        occurred_at=T0 + timedelta(minutes=5),
        task="spam",
        inference_id=inference_id,
        signal=kind,
        **extra,
    )


def lease(db, holder: str, lease_s: float = 60, reviewer: str | None = None) -> str | None:
    """Lease for the token ``holder`` (named after it unless ``reviewer`` is given)."""
    item = queue.lease_next(
        db,
        holder=holder,
        reviewer=reviewer or holder,
        task=None,
        lease_s=lease_s,
        low_confidence=LOW,
    )
    return item and item["inference_id"]


def seed(db) -> None:
    write_batch(
        db,
        [
            answer("sure-1", -0.05),
            answer("sure-2", -0.1),
            answer("unsure-mild", -1.0),
            answer("unsure-bad", -3.0),
            answer("hated", -0.01, minute=1),
            answer("rated-low", -0.02, minute=2),
            answer("accepted", -2.5),
            answer("fixed", -2.0),
            signal("f1", "hated", "thumbs_down"),
            signal("f2", "rated-low", "rating", rating=2),
            signal("f3", "accepted", "accepted"),
            signal("f4", "sure-1", "thumbs_up"),
            CorrectionEvent(
                event_id="c1",
                occurred_at=T0,
                task="spam",
                inference_id="fixed",
                corrected_output="spam",
                reviewer="ana",
            ),
        ],
        [],
    )


def test_order_of_need_negative_then_least_confident_then_calibration(db, clock):
    seed(db)
    summary = queue.queue_summary(db, task=None, low_confidence=LOW)
    assert summary == {
        "pending": 6,
        "by_reason": {"negative feedback": 2, "low model confidence": 2, "calibration sample": 2},
    }
    order = [lease(db, f"reviewer-{i}") for i in range(7)]
    # Newest negative feedback first; then lowest confidence; settled items never appear.
    assert order[:4] == ["rated-low", "hated", "unsure-bad", "unsure-mild"]
    assert sorted(order[4:6]) == ["sure-1", "sure-2"] and order[6] is None


def test_one_reviewer_per_item_until_the_lease_expires(db, clock):
    seed(db)
    first = lease(db, "ana", lease_s=60)
    assert lease(db, "ana") == first  # asking again keeps your item
    assert lease(db, "ben") != first
    with pytest.raises(queue.LeaseError, match="leased to another reviewer"):
        queue.check_lease(db, first, "ben")
    clock["t"] += timedelta(seconds=61)
    with pytest.raises(queue.LeaseError, match="expired"):
        queue.check_lease(db, first, "ana")
    assert lease(db, "cleo") == first  # an expired lease frees the item
    assert queue.check_lease(db, first, "cleo")["task"] == "spam"
    queue.claim_verdict(db, first, "cleo", "approved")
    queue.finish(db, first, "cleo")
    with pytest.raises(queue.LeaseError, match="already reviewed"):
        queue.check_lease(db, first, "cleo")
    assert first not in [lease(db, f"r{i}") for i in range(8)]


def test_a_verdict_is_claimed_once(db, clock):
    seed(db)
    first = lease(db, "ana")
    queue.claim_verdict(db, first, "ana", "corrected")
    for outcome in ("approved", "corrected"):  # a second verdict, while the first is recorded
        with pytest.raises(queue.LeaseError, match="already has a verdict"):
            queue.claim_verdict(db, first, "ana", outcome)
    queue.finish(db, first, "ana")
    with pytest.raises(queue.LeaseError, match="already reviewed by ana"):
        queue.claim_verdict(db, first, "ana", "approved")


def test_a_verdict_that_could_not_be_published_can_be_sent_again(db, clock):
    seed(db)
    first = lease(db, "ana")
    queue.claim_verdict(db, first, "ana", "approved")
    queue.unclaim(db, first, "ana")  # Kafka was down: the lease holds
    assert lease(db, "ana") == first
    queue.claim_verdict(db, first, "ana", "corrected")


def test_a_claim_whose_lease_ran_out_frees_the_item(db, clock):
    """The process died between claiming a verdict and publishing it: nothing was decided."""
    seed(db)
    first = lease(db, "ana", lease_s=60)
    queue.claim_verdict(db, first, "ana", "approved")
    clock["t"] += timedelta(seconds=61)
    assert lease(db, "ben") == first


def test_leases_belong_to_a_token_not_to_its_name(db, clock):
    seed(db)
    first = lease(db, "token-1", reviewer="unnamed")
    assert lease(db, "token-2", reviewer="unnamed") != first
    with pytest.raises(queue.LeaseError, match="leased to another reviewer"):
        queue.claim_verdict(db, first, "token-2", "approved")
    queue.claim_verdict(db, first, "token-1", "approved")


def test_a_skipped_item_goes_to_someone_else(db, clock):
    seed(db)
    first = lease(db, "ana")
    queue.release(db, first, "ana")
    assert lease(db, "ana") != first
    assert lease(db, "ben") == first


def test_console_series_show_growth_and_drift_per_adapter(db):
    write_batch(
        db,
        [
            answer("a1", -0.1, adapter=None),
            answer("a2", -0.1, adapter=None),
            answer("b1", -0.1, minute=30, adapter="cafe01"),
            answer("b2", -0.1, minute=30, adapter="cafe01"),
            signal("n1", "a1", "thumbs_down"),
            CorrectionEvent(
                event_id="c1",
                occurred_at=T0,
                task="spam",
                inference_id="a2",
                corrected_output="spam",
                reviewer="ana",
            ),
            CorrectionEvent(
                event_id="c2",
                occurred_at=T0,
                task="spam",
                inference_id="b1",
                corrected_output="ham",
                reviewer="ana",
            ),  # approves: not a correction
        ],
        [],
    )
    series = drift(db, "spam")
    assert series["bucket"] == "minute"
    base, adapter = series["by_adapter"]["base"][0], series["by_adapter"]["cafe01"][0]
    assert (base["served"], base["correction_rate"], base["negative_feedback_rate"]) == (
        2,
        0.5,
        0.5,
    )
    assert (adapter["served"], adapter["correction_rate"]) == (2, 0.0)
    growth = ground_truth_growth(db, "spam")
    assert growth["total"] == 2 and growth["points"][-1]["cumulative"] == 2
