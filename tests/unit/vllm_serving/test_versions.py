"""The gateway's choice of version: routed if the replica serves it, else what served before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.vllm_serving.versions import NotServed, VersionRouter

T0 = datetime(2026, 12, 1, tzinfo=UTC)


def test_a_task_never_promoted_is_answered_by_the_base_model():
    assert VersionRouter().pick("spam", None, {"base"}) == (None, None)


def test_the_previous_champion_answers_until_the_replica_serves_the_new_one():
    router = VersionRouter()
    router.apply("spam", "a1", T0)
    router.apply("spam", "b2", T0 + timedelta(seconds=1))
    assert router.pick("spam", None, {"base", "spam@a1"}) == ("a1", "spam@a1")
    assert router.pick("spam", None, {"base", "spam@a1", "spam@b2"}) == ("b2", "spam@b2")


def test_a_first_promotion_falls_back_to_the_base_model_until_loaded():
    router = VersionRouter()
    router.apply("spam", "a1", T0)
    assert router.pick("spam", None, {"base"}) == (None, None)


def test_a_replica_with_none_of_the_tasks_versions_is_not_used():
    router = VersionRouter()
    router.apply("spam", "a1", T0)
    router.apply("spam", "b2", T0 + timedelta(seconds=1))
    with pytest.raises(NotServed, match="spam"):
        router.pick("spam", None, {"base", "faq@x"})


def test_a_canary_serves_its_callers_once_loaded():
    router = VersionRouter()
    router.apply("spam", "a1", T0)
    router.apply("spam", "a1", T0 + timedelta(seconds=1), {"adapter_id": "c3", "fraction": 1.0})
    assert router.pick("spam", "ana", {"spam@a1"}) == ("a1", "spam@a1")
    assert router.pick("spam", "ana", {"spam@a1", "spam@c3"}) == ("c3", "spam@c3")
