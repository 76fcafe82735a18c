"""Cycle scaling: wall time of one retraining cycle with 200 new examples on top of 1k and of
10k historical examples, in the same run. Incremental cycles train on the new examples plus
a fixed replay budget and score a capped eval set, so they should barely grow (a full
retrain on all ground truth grows about 10x).

    .venv/bin/python benchmarks/cycle_scaling.py [--model tiny|default]

``tiny`` (the default here) is a 2-layer random Llama with the real tokenizer: it isolates
what grows with history (snapshots, replay sampling, the store, eval-set size) from model
compute, which is the same for both cycles by construction. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from _common import PeakRss, report

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from feedback.writer import write_batch
from schemas import InferenceEvent
from schemas.tasks import TaskDefinition
from services.control_plane.cycle_runner import CyclePaths, CycleRunner
from services.control_plane.store_worker import StoreWorker
from training.cycle_records import get_cycle
from training.task_records import create_task

TASK = TaskDefinition.model_validate(
    {
        "name": "scale",
        "kind": "label",
        "labels": ["spam", "ham"],
        "instruction": "Is this email spam or ham?",
        "gate": {
            "mode": "auto",
            "min_eval_size": 1,
            "min_delta": -1.0,
            "regression_tolerance": 1.0,
        },
    }
)


def examples(prefix: str, count: int) -> list[InferenceEvent]:
    now = datetime.now(UTC)
    return [
        InferenceEvent(
            event_id=f"{prefix}-{i}",
            occurred_at=now,
            task="scale",
            input=f"Subject: offer {prefix} {i}\n\n"
            + ("win cash now " if i % 2 else "minutes of the meeting ") * 8,
            output="spam" if i % 2 else "ham",
            base_model="bench",
            origin="import",
        )
        for i in range(count)
    ]


async def one_cycle(home: Path, base_model: str | None, history: int) -> float:
    store = StoreWorker(home / "store.duckdb")
    store.open()
    runner = CycleRunner(
        store=store,
        producer=None,
        lease_s=600,
        timeout_s=3600,
        paths=CyclePaths(
            base_model, home / "models", home / "adapters", home / "snapshots", home / "cycles"
        ),
    )
    await store.call(create_task, TASK)
    for start in range(0, history, 5000):
        await store.call(write_batch, examples(f"old{start}", min(5000, history - start)))
    await _run(runner, store)  # the champion the timed cycle builds on (not timed)
    await store.call(write_batch, examples("new", 200))
    started = time.perf_counter()
    await _run(runner, store)
    seconds = time.perf_counter() - started
    store.close()
    return seconds


async def _run(runner: CycleRunner, store: StoreWorker) -> None:
    cycle_id = await runner.start("scale", trigger="benchmark")
    assert cycle_id is not None
    await asyncio.gather(*runner.running.values())
    cycle = await store.call(get_cycle, cycle_id)
    if cycle["state"] != "decided":
        raise SystemExit(f"cycle failed: {cycle['error']}")


def tiny_model(root: Path) -> str:
    from transformers import AutoTokenizer

    from training.checkpoints import BUNDLED_GGUF, bundled_gguf_dir
    from training.tiny_llama import make_tiny_llama

    tokenizer = AutoTokenizer.from_pretrained(bundled_gguf_dir(), gguf_file=BUNDLED_GGUF)
    tokenizer.save_pretrained(root / "tokenizer")
    return str(make_tiny_llama(root / "tiny", root / "tokenizer"))


def main(args: argparse.Namespace) -> None:
    rss = PeakRss()
    root = Path(tempfile.mkdtemp(prefix="flywheel-cycle-bench-"))
    base_model = tiny_model(root) if args.model == "tiny" else None
    results: dict[str, float | str] = {"model": args.model}
    for history in (1_000, 10_000):
        rss.reset()
        seconds = asyncio.run(one_cycle(root / f"h{history}", base_model, history))
        results[f"cycle_s_{history // 1000}k"] = round(seconds, 2)
        results[f"peak_rss_mb_{history // 1000}k"] = rss.peak_mb
    results["growth"] = round(float(results["cycle_s_10k"]) / float(results["cycle_s_1k"]), 3)
    report(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["tiny", "default"], default="tiny")
    main(parser.parse_args())
