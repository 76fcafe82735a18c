"""One base model in memory with the tasks' adapters beside it, used from one thread.

Every model call (a request, loading or dropping an adapter) runs on the host's single
thread, in the order it was submitted. That is what makes a hot swap safe: a request that
was dispatched with the old champion is queued before the swap's clean-up and finishes on
the old weights; every request after the swap gets the new ones. Nothing is ever mutated
under a running forward pass.

An adapter is loaded only after its files hash to its name (adapters are immutable and named
by content hash), so a corrupted or half-copied adapter is refused and a stale one cannot
exist.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import torch

from training.checkpoints import load_model, load_tokenizer, pick_device
from training.lora_recipe import verify_adapter

log = logging.getLogger(__name__)
T = TypeVar("T")


class AdapterLoadError(Exception):
    """An adapter cannot be served (missing, corrupted); the current champion stays."""


class ModelHost:
    def __init__(self, base_model: Path, *, max_adapters: int = 8, threads: int | None = None
                 ) -> None:  # fmt: skip
        self.base_model = base_model
        self.max_adapters = max_adapters
        self._threads = threads
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self._loaded: OrderedDict[str, Path] = OrderedDict()  # adapter id → dir, LRU order
        self.model: Any = None
        self.tokenizer: Any = None
        self._peft: Any = None
        self._pinned: set[str] = set()
        self._lock = threading.Lock()

    # -- lifecycle (blocking; call from a thread or before serving) -------------------------

    def load(self) -> None:
        self._executor.submit(self._load).result()

    def _load(self) -> None:
        if self._threads:
            torch.set_num_threads(self._threads)
        self.tokenizer = load_tokenizer(self.base_model)
        self.model = load_model(self.base_model, pick_device())
        self.model.eval()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    # -- on the model thread ----------------------------------------------------------------

    async def call(self, adapter_id: str | None, fn: Callable[[Any, Any], T]) -> T:
        """Run ``fn(model, tokenizer)`` with the adapter active (None: the base model)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._with_adapter, adapter_id, fn)

    async def ensure_loaded(self, adapter_id: str, directory: Path) -> float:
        """Verify and load an adapter (no-op when loaded); returns seconds spent."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._ensure, adapter_id, directory)

    async def pin(self, adapter_ids: set[str | None]) -> None:
        """Keep these adapters (the champions) loaded; others may be evicted beyond the cap."""
        loop = asyncio.get_running_loop()
        wanted = {a for a in adapter_ids if a is not None}
        await loop.run_in_executor(self._executor, self._evict, wanted)

    @property
    def loaded(self) -> list[str]:
        return list(self._loaded)

    def _with_adapter(self, adapter_id: str | None, fn: Callable[[Any, Any], T]) -> T:
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

    def _ensure(self, adapter_id: str, directory: Path) -> float:
        import time

        from peft import PeftModel

        if adapter_id in self._loaded:
            return 0.0
        started = time.perf_counter()
        try:
            verify_adapter(directory)
        except (OSError, ValueError) as error:
            raise AdapterLoadError(str(error)) from error
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
        return time.perf_counter() - started

    def _evict(self, keep: set[str]) -> None:
        self._pinned = keep
        while len(self._loaded) > self.max_adapters:
            victim = next((a for a in self._loaded if a not in keep), None)
            if victim is None:
                return
            if self._peft.active_adapter == victim:
                self._peft.set_adapter(next(iter(keep)))
            self._peft.delete_adapter(victim)
            del self._loaded[victim]
            log.info("unloaded adapter %s (no longer a champion)", victim)
