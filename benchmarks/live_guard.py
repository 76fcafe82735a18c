"""Live guard figures: the faust monitor's throughput against a bare aiokafka consumer on
the same topic, and how fast (and how rarely wrongly) the sequential test rolls back.

    python -m benchmarks.live_guard [--events 30000] [--canaries 300]

- ``monitor_ratio_to_bare``: events per second the live monitor counts (a real faust worker
  on the bundled broker, measured from its first published count to its last, so start-up
  and group join are left out) divided by a bare aiokafka consumer's reading the same topic.
- ``events_to_rollback_10_20`` / ``_10_40``: median judged events (both versions together)
  until a canary whose negative-feedback rate is 20% / 40% against the champion's 10% is
  rolled back, looked at after every event, with the default canary policy's minimum events.
- ``false_rollback_rate``: share of canaries with the champion's own rate ever rolled back.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer

from benchmarks._common import free_port, report, temporary_home
from schemas.tasks import CanaryPolicy
from schemas.topics import INFERENCE, LIVE_COUNTS
from services.broker import EmbeddedBroker
from services.live_monitor.process import LiveMonitorProcess
from services.topics import ensure_topics
from training.sequential_test import difference_bounds, tuned_rho

HORIZON = 20_000
"""Judged events a simulated canary may run before it counts as never rolled back."""


def produce(bootstrap: str, events: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, batch_size=256 * 1024)
    when = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    for i in range(events):
        body = {
            "type": "inference",
            "event_id": f"e{i}",
            "occurred_at": when,
            "task": "bench",
            "input": "q",
            "output": "a",
            "base_model": "m",
            "adapter_id": "v1",
        }
        producer.send(INFERENCE, key=b"bench", value=json.dumps(body).encode())
    producer.flush()
    producer.close()


async def bare_rate(bootstrap: str, events: int) -> float:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    parts = [TopicPartition(INFERENCE, p) for p in consumer.partitions_for_topic(INFERENCE) or ()]
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    seen, started = 0, time.perf_counter()
    while seen < events:
        for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
            seen += len(records)
    elapsed = time.perf_counter() - started
    await consumer.stop()
    return events / elapsed


async def monitor_rate(bootstrap: str, events: int, home: Path) -> float:
    """Counted events per second between the monitor's first published count and its last."""
    os.environ.update({"FLYWHEEL_HOME": str(home), "FLYWHEEL_LIVE_PUBLISH_INTERVAL_S": "0.1"})
    (home / "run").mkdir(parents=True, exist_ok=True)
    monitor = LiveMonitorProcess(bootstrap=bootstrap, log_file=home / "monitor.log")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    parts = [
        TopicPartition(LIVE_COUNTS, p) for p in consumer.partitions_for_topic(LIVE_COUNTS) or ()
    ]
    consumer.assign(parts)
    await consumer.seek_to_beginning(*parts)
    monitor.start()
    first: tuple[float, int] | None = None
    try:
        while True:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for record in records:
                    answers = json.loads(record.value)["counts"]["answers"]
                    now = time.perf_counter()
                    first = first or (now, answers)
                    if answers >= events:
                        return (answers - first[1]) / max(now - first[0], 1e-9)
    finally:
        monitor.stop()
        await consumer.stop()


def events_to_rollback(rate_canary: float, canaries: int, fraction: float, seed: int) -> np.ndarray:
    """Judged events until rollback per simulated canary (HORIZON + 1: never)."""
    policy = CanaryPolicy()
    rng = np.random.default_rng(seed)
    rho = tuned_rho(policy.min_events, alpha=0.025)
    on_canary = rng.random((canaries, HORIZON)) < fraction
    bad = rng.random((canaries, HORIZON)) < np.where(on_canary, rate_canary, 0.1)
    n_c, n_r = np.cumsum(on_canary, axis=1), np.cumsum(~on_canary, axis=1)
    k_c, k_r = np.cumsum(bad & on_canary, axis=1), np.cumsum(bad & ~on_canary, axis=1)
    low, _ = difference_bounds((k_c, n_c), (k_r, n_r), rho=rho, alpha=0.05)
    rolled = (low > 0) & (np.minimum(n_c, n_r) >= policy.min_events)
    return np.where(rolled.any(axis=1), rolled.argmax(axis=1) + 1, HORIZON + 1)


def main(args: argparse.Namespace) -> dict[str, Any]:
    home = temporary_home("flywheel-live-guard-")
    broker = EmbeddedBroker(free_port(), log_file=home / "broker.log")
    broker.start()
    try:
        ensure_topics(broker.bootstrap, partitions=4)
        os.environ["FLYWHEEL_PARTITIONS"] = "4"
        produce(broker.bootstrap, args.events)
        bare = asyncio.run(bare_rate(broker.bootstrap, args.events))
        monitored = asyncio.run(monitor_rate(broker.bootstrap, args.events, home))
    finally:
        broker.stop()
    shifts = {
        name: events_to_rollback(rate, args.canaries, args.fraction, seed)
        for name, rate, seed in (("10_20", 0.2, 1), ("10_40", 0.4, 2), ("none", 0.1, 3))
    }
    return {
        "events": args.events,
        "bare_events_per_s": round(bare),
        "monitor_events_per_s": round(monitored),
        "monitor_ratio_to_bare": round(monitored / bare, 4),
        "canary_fraction": args.fraction,
        "simulated_canaries": args.canaries,
        "events_to_rollback_10_20": float(np.median(shifts["10_20"])),
        "events_to_rollback_10_40": float(np.median(shifts["10_40"])),
        "false_rollback_rate": float((shifts["none"] <= HORIZON).mean()),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--canaries", type=int, default=300)
    parser.add_argument("--fraction", type=float, default=0.5)
    report(main(parser.parse_args()))
