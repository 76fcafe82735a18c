"""What a vLLM replica must load and unload: desired versions against what it serves.

Each version is served under its own name, ``task@<adapter id>``. Adapter ids are content
hashes, so one name always means one set of weights: vLLM's cached state for a name can
never be stale, and loading a name the replica already lists is never needed.

A version that stops being routed is unloaded only after a grace period, so a gateway that
has not yet heard of a promotion (or a request already sent) still finds the old version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

SEPARATOR = "@"


def served_name(task: str, adapter_id: str) -> str:
    """The name a version is served under on every replica."""
    return f"{task}{SEPARATOR}{adapter_id}"


def is_version_name(name: str) -> bool:
    """True for names the reconciler manages (``task@adapter``); the base model's name and
    anything an operator loaded by hand under another name are left alone."""
    task, _, adapter = name.partition(SEPARATOR)
    return bool(task) and bool(adapter)


def desired_names(routes: Mapping[str, Iterable[str | None]]) -> set[str]:
    """Served names of every routed version (champion and canary) per task; None, the base
    model, needs no adapter."""
    return {
        served_name(task, adapter)
        for task, adapters in routes.items()
        for adapter in adapters
        if adapter is not None
    }


@dataclass(frozen=True)
class ReplicaPlan:
    loads: list[str]
    """Names to load now: desired, not served."""
    unloads: list[str]
    """Names to unload now: not desired for at least the grace period."""
    unrouted_since: dict[str, float] = field(default_factory=dict)
    """When each served, undesired name was first seen undesired (carried to the next plan)."""


def plan_replica(
    *,
    desired: set[str],
    served: set[str],
    unrouted_since: Mapping[str, float],
    now: float,
    grace_s: float,
) -> ReplicaPlan:
    """Loads and unloads that bring one replica from ``served`` to ``desired``.

    ``unrouted_since`` is the previous plan's: a name keeps its first undesired time while
    it stays undesired, and forgets it once desired again or gone from the replica."""
    managed = {name for name in served if is_version_name(name)}
    undesired = managed - desired
    since = {name: unrouted_since.get(name, now) for name in undesired}
    unloads = sorted(name for name, first in since.items() if now - first >= grace_s)
    return ReplicaPlan(
        loads=sorted(desired - served),
        unloads=unloads,
        unrouted_since={n: t for n, t in since.items() if n not in unloads},
    )
