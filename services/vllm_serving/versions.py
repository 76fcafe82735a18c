"""Which version answers a request at the gateway, given what a replica serves right now.

The gateway follows promotions as the reconciler does, but a replica serves a new version
only once the reconciler has loaded it there. Until then the request goes to the version
that served before (the reconciler keeps it for a grace period), so no request fails and
none waits on a load during a promotion.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from services.inference_server.champions import ChampionBook
from services.vllm_serving.adapter_plan import served_name


class NotServed(Exception):
    """No version of the task is served by this replica yet."""


class VersionRouter:
    def __init__(self, book: ChampionBook | None = None) -> None:
        self.book = book or ChampionBook()
        self._previous: dict[str, str | None] = {}

    def apply(
        self,
        task: str,
        adapter_id: str | None,
        since: datetime,
        canary: dict | bool | None = False,
    ) -> bool:
        """Record a promotion (as ``ChampionBook.apply``), remembering the champion it
        replaces as the fallback while replicas catch up."""
        before = self.book.current(task)
        changed = self.book.apply(task, adapter_id, since, canary)
        if changed and before != adapter_id:
            self._previous[task] = before
        return changed

    def pick(
        self, task: str, caller_key: str | None, served: Collection[str]
    ) -> tuple[str | None, str | None]:
        """(adapter id, served name) that answers this caller on a replica serving
        ``served``: the routed version, else the champion, else the previous champion; the
        base model (adapter None, name None) for a task never promoted. NotServed when the
        replica has none of the task's versions."""
        routed = self.book.route(task, caller_key)
        choices = [routed, self.book.current(task)]
        if task in self._previous:
            choices.append(self._previous[task])
        for adapter_id in dict.fromkeys(choices):
            if adapter_id is None:
                return None, None
            name = served_name(task, adapter_id)
            if name in served:
                return adapter_id, name
        raise NotServed(f"this replica does not serve task {task}'s version {routed} yet")
