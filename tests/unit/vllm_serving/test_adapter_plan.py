"""The reconciler's plan: desired versions against what a replica serves."""

from __future__ import annotations

from services.vllm_serving.adapter_plan import desired_names, plan_replica, served_name


def test_a_promotion_loads_the_new_version_and_keeps_the_old_one_through_the_grace_period():
    old, new = served_name("spam", "a1"), served_name("spam", "b2")
    first = plan_replica(
        desired={new}, served={"base", old}, unrouted_since={}, now=100.0, grace_s=30.0
    )
    assert first.loads == [new] and first.unloads == []
    assert first.unrouted_since == {old: 100.0}
    still = plan_replica(
        desired={new},
        served={"base", old, new},
        unrouted_since=first.unrouted_since,
        now=129.0,
        grace_s=30.0,
    )
    assert still.loads == [] and still.unloads == []
    over = plan_replica(
        desired={new},
        served={"base", old, new},
        unrouted_since=still.unrouted_since,
        now=130.0,
        grace_s=30.0,
    )
    assert over.unloads == [old] and over.unrouted_since == {}


def test_a_restarted_replica_gets_every_routed_version_back():
    desired = desired_names({"spam": ["a1", "c3"], "faq": ["f9"], "new-task": [None]})
    plan = plan_replica(desired=desired, served={"base"}, unrouted_since={}, now=0, grace_s=60)
    assert plan.loads == ["faq@f9", "spam@a1", "spam@c3"]
    assert plan.unloads == []


def test_the_base_model_and_hand_loaded_names_are_never_unloaded():
    plan = plan_replica(
        desired=set(),
        served={"base", "my-own-lora", "spam@a1"},
        unrouted_since={"spam@a1": 0.0},
        now=1000.0,
        grace_s=60.0,
    )
    assert plan.unloads == ["spam@a1"]


def test_a_version_routed_again_forgets_its_grace_clock():
    plan = plan_replica(
        desired={"spam@a1"},
        served={"spam@a1"},
        unrouted_since={"spam@a1": 0.0},
        now=1000.0,
        grace_s=60.0,
    )
    assert plan.unloads == [] and plan.unrouted_since == {}
