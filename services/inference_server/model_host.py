"""One base model in memory with the tasks' adapters beside it, used from one thread.

Every model call (a request, loading or dropping an adapter) runs on the host's single
thread, so nothing is ever mutated under a running forward pass. Loading an adapter jumps
the queue of waiting requests (it takes about 0.06 s), and a request picks its adapter when
it starts running, not when it arrived: once a swap is done, every request that starts gets
the new weights, and a request that started before it finishes on the old ones.

An adapter is loaded only after its files hash to its name (adapters are immutable and named
by content hash), so a corrupted or half-copied adapter is refused and a stale one cannot
exist.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import torch

from training.adapter_files import AdapterLoadError as AdapterLoadError  # re-exported
from training.auto_recipe import ResolvedRecipe, stored_recipe
from training.checkpoints import load_model, load_tokenizer, pick_device
from training.lora_recipe import verify_adapter

log = logging.getLogger(__name__)
T = TypeVar("T")


URGENT, NORMAL = 0, 1


class _ModelThread:
    """One worker thread with a priority queue: adapter loads before waiting requests."""

    def __init__(self) -> None:
        self._jobs: queue.PriorityQueue[tuple[int, int, Callable[[], Any] | None, Future]] = (
            queue.PriorityQueue()
        )
        self._order = itertools.count()
        self._thread = threading.Thread(target=self._work, name="model", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], T], priority: int = NORMAL) -> Future[T]:
        future: Future[T] = Future()
        self._jobs.put((priority, next(self._order), fn, future))
        return future

    def _work(self) -> None:
        while True:
            _, _, fn, future = self._jobs.get()
            if fn is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as error:  # handed to the caller, never kills the thread
                future.set_exception(error)

    def shutdown(self) -> None:
        self._jobs.put((2, next(self._order), None, Future()))
        self._thread.join(30)


class ModelHost:
    def __init__(
        self, base_model: Path, *, max_adapters: int = 8, threads: int | None = None
    ) -> None:
        self.base_model = base_model
        self.max_adapters = max_adapters
        self._threads = threads
        self._worker = _ModelThread()
        self._loaded: OrderedDict[str, Path] = OrderedDict()  # adapter id → dir, LRU order
        self._recipes: dict[str, ResolvedRecipe | None] = {}
        self._in_use: str | None = None  # the adapter of the call running on the model thread
        self.model: Any = None
        self.tokenizer: Any = None
        self._peft: Any = None

    # -- lifecycle (blocking; call from a thread or before serving) -------------------------

    def load(self) -> None:
        self._worker.submit(self._load).result()

    def _load(self) -> None:
        if self._threads:
            torch.set_num_threads(self._threads)
        self.tokenizer = load_tokenizer(self.base_model)
        self.model = load_model(self.base_model, pick_device(), inference=True)
        self.model.eval()

    def close(self) -> None:
        self._worker.shutdown()

    # -- on the model thread ----------------------------------------------------------------

    async def call(
        self, choose: Callable[[], str | None], fn: Callable[[Any, Any], T]
    ) -> tuple[str | None, T]:
        """Run ``fn(model, tokenizer)`` with the adapter ``choose()`` names when the call
        starts (None: the base model); returns that adapter id and fn's result."""

        def job() -> tuple[str | None, T]:
            adapter_id = choose()
            return adapter_id, self._with_adapter(adapter_id, fn)

        return await asyncio.wrap_future(self._worker.submit(job))

    async def ensure_loaded(self, adapter_id: str, directory: Path) -> float:
        """Verify (off the model thread) and load an adapter ahead of waiting requests;
        returns the seconds it took. A no-op when it is loaded already."""
        started = time.perf_counter()
        if adapter_id not in self._loaded:
            try:
                await asyncio.to_thread(verify_adapter, directory)
            except (OSError, ValueError) as error:
                raise AdapterLoadError(str(error)) from error
        await asyncio.wrap_future(
            self._worker.submit(lambda: self._ensure(adapter_id, directory), URGENT)
        )
        return time.perf_counter() - started

    async def pin(self, adapter_ids: set[str | None]) -> None:
        """Keep these adapters (the champions) loaded; others may be evicted beyond the cap."""
        wanted = {a for a in adapter_ids if a is not None}
        await asyncio.wrap_future(self._worker.submit(lambda: self._evict(wanted)))

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    def recipe_in_use(self) -> ResolvedRecipe | None:
        """Inside a ``call``'s fn: the recipe its adapter was trained with (None for the
        base model), so inputs are cut and answers sized as in training."""
        return self._recipes.get(self._in_use) if self._in_use else None

    def _with_adapter(self, adapter_id: str | None, fn: Callable[[Any, Any], T]) -> T:
        self._in_use = adapter_id
        if adapter_id is None:
            if self._peft is None:
                return fn(self.model, self.tokenizer)
            with self._peft.disable_adapter():
                return fn(self._peft, self.tokenizer)
        if adapter_id not in self._loaded:
            raise AdapterLoadError(f"adapter {adapter_id} is not loaded on this server")
        self._loaded.move_to_end(adapter_id)
        if self._peft.active_adapter != adapter_id:
            self._peft.set_adapter(adapter_id)
        return fn(self._peft, self.tokenizer)

    def _ensure(self, adapter_id: str, directory: Path) -> None:
        from peft import PeftModel

        if adapter_id in self._loaded:
            return
        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(
                    self.model, directory, adapter_name=adapter_id, is_trainable=False
                )
                self._peft.eval()
            else:
                self._peft.load_adapter(directory, adapter_name=adapter_id, is_trainable=False)
        except Exception as error:  # peft raises many types for a bad file
            raise AdapterLoadError(f"adapter {adapter_id} could not be loaded: {error}") from error
        self._loaded[adapter_id] = directory
        self._recipes[adapter_id] = stored_recipe(directory)

    def _evict(self, keep: set[str]) -> None:
        """Unload the least recently used non-champions beyond ``max_adapters``."""
        while len(self._loaded) > self.max_adapters:
            victim = next((a for a in self._loaded if a not in keep), None)
            if victim is None:
                return
            if self._peft.active_adapter == victim:
                self._peft.set_adapter(next(a for a in self._loaded if a != victim))
            self._peft.delete_adapter(victim)
            del self._loaded[victim]
            self._recipes.pop(victim, None)
            log.info("unloaded adapter %s (no longer a champion)", victim)
