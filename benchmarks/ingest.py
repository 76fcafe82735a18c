"""Ingest benchmark: Kafka → validation → DuckDB, against a bare consumer and a naive path.

All three read the same pre-filled topic on the bundled broker in the same run, so the ratio
holds on a noisy machine even when absolute rates drift. Then a steady 5k events/s stream
measures event-to-queryable latency (send time → DuckDB commit).

    .venv/bin/python benchmarks/ingest.py [--events 200000] [--rate 5000] [--seconds 10]

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import PeakRss, report
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from feedback.store import connect
from schemas import Invalid, parse_event
from schemas.topics import INFERENCE
from services.broker import EmbeddedBroker
from services.control_plane.ingest_agent import IngestAgent
from services.control_plane.store_worker import StoreWorker
from services.topics import ensure_topics

PARTITIONS = 4


def event(event_id: str, occurred_at: str | None = None) -> bytes:
    return json.dumps(
        {
            "type": "inference",
            "event_id": event_id,
            "occurred_at": occurred_at or datetime.now(UTC).isoformat(),
            "task": "bench",
            "input": "Subject: quarterly report\n\nPlease find the figures attached. " * 3,
            "output": "ham",
            "base_model": "smollm2-135m-instruct",
            "latency_ms": 41.5,
            "metadata": {"app": "mail", "region": "eu"},
        }
    ).encode()


async def _fill(bootstrap: str, count: int) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    occurred = datetime.now(UTC).isoformat()
    prefix = uuid.uuid4().hex[:8]
    pending = []
    for i in range(count):
        pending.append(await producer.send(INFERENCE, event(f"{prefix}-{i}", occurred)))
        if len(pending) >= 20_000:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    await producer.stop()


def _steady(bootstrap: str, rate: int, seconds: float, sent_count: Any) -> None:
    """Runs in its own process so producing does not steal the ingest's CPU time slice."""

    async def main() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
        await producer.start()
        tick, per_tick = 0.01, rate / 100
        start, sent = time.monotonic(), 0
        while (elapsed := time.monotonic() - start) < seconds:
            due = int(elapsed / tick * per_tick) + int(per_tick)
            while sent < due:
                await producer.send(INFERENCE, event(f"steady-{sent}"))
                sent += 1
            await asyncio.sleep(tick)
        await producer.flush()
        await producer.stop()
        sent_count.value = sent

    asyncio.run(main())


async def bare_consumer(bootstrap: str, count: int) -> float:
    consumer = AIOKafkaConsumer(
        INFERENCE,
        bootstrap_servers=bootstrap,
        group_id=f"bare-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1500,
        fetch_max_bytes=64 * 2**20,
        max_partition_fetch_bytes=16 * 2**20,
    )
    await consumer.start()
    seen, started = 0, None
    while seen < count:
        batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
        if batches and started is None:
            started = time.perf_counter()
        seen += sum(len(b) for b in batches.values())
    elapsed = time.perf_counter() - (started or time.perf_counter())
    await consumer.stop()
    return count / elapsed


class TimedStore(StoreWorker):
    """The real store worker, noting when each write committed and which events it held."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.commits: list[tuple[float, list[Any]]] = []
        self.first_call: float | None = None

    async def call(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.first_call is None:
            self.first_call = time.perf_counter()
        result = await super().call(fn, *args, **kwargs)
        if args:
            self.commits.append((time.time(), args[0]))
        return result


async def run_agent(bootstrap: str, store: TimedStore, until: int | list[int], group: str) -> float:
    """Run the real ingest agent until ``until`` events committed; returns events/s.
    ``until`` may be a one-item list that the caller fills in later."""
    target = until if isinstance(until, list) else [until]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    agent = IngestAgent(
        bootstrap=bootstrap,
        group_id=group,
        store=store,
        producer=producer,
        max_records=10_000,
        max_wait_ms=100,
    )
    await agent.start()
    task = asyncio.create_task(agent.run())
    while sum(agent.counters.stored.values()) < target[0]:
        await asyncio.sleep(0.01)
    finished = time.perf_counter()
    agent.stop()
    await task
    await producer.stop()
    return target[0] / (finished - (store.first_call or finished))


async def naive_path(bootstrap: str, count: int, db_path: Path) -> float:
    """What one would write first: one validated event, one INSERT, one commit at a time."""
    connection = connect(db_path)
    consumer = AIOKafkaConsumer(
        INFERENCE,
        bootstrap_servers=bootstrap,
        group_id=f"naive-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
    )
    await consumer.start()
    done, started = 0, None
    while done < count:
        message = await consumer.getone()
        started = started or time.perf_counter()
        parsed = parse_event(message.value)
        if isinstance(parsed, Invalid):
            continue
        connection.execute(
            "INSERT OR IGNORE INTO inferences VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                parsed.event_id,
                parsed.task,
                parsed.input,
                parsed.output,
                parsed.base_model,
                parsed.adapter_id,
                parsed.latency_ms,
                parsed.mean_logprob,
                parsed.origin,
                json.dumps(parsed.metadata),
                parsed.occurred_at.replace(tzinfo=None),
                datetime.now(UTC).replace(tzinfo=None),
            ],
        )
        await consumer.commit()
        done += 1
    elapsed = time.perf_counter() - (started or time.perf_counter())
    await consumer.stop()
    connection.close()
    return count / elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rss = PeakRss()
    work = Path(tempfile.mkdtemp(prefix="flywheel-bench-"))
    port = _free_port()
    results: dict[str, Any] = {"events": args.events}
    with EmbeddedBroker(port, log_file=work / "broker.log") as broker:
        ensure_topics(broker.bootstrap, partitions=PARTITIONS)
        print(f"filling {INFERENCE} with {args.events} events ...", file=sys.stderr)
        await _fill(broker.bootstrap, args.events)

        rss.reset()
        bare = await bare_consumer(broker.bootstrap, args.events)
        results["bare_consumer_msgs_per_s"] = round(bare)
        results["bare_peak_rss_mb"] = rss.peak_mb
        print(f"bare consumer: {results['bare_consumer_msgs_per_s']} msg/s", file=sys.stderr)

        rss.reset()
        store = TimedStore(work / "ingest.duckdb")
        store.open()
        results["ingest_events_per_s"] = round(
            await run_agent(broker.bootstrap, store, args.events, "bench-ingest")
        )
        results["ingest_peak_rss_mb"] = rss.peak_mb
        print(f"ingest: {results['ingest_events_per_s']} events/s", file=sys.stderr)
        store.close()

        naive_count = min(args.naive_events, args.events)
        results["naive_events_per_s"] = round(
            await naive_path(broker.bootstrap, naive_count, work / "naive.duckdb")
        )
        results["naive_events_measured"] = naive_count
        print(f"naive: {results['naive_events_per_s']} events/s", file=sys.stderr)

        # Steady stream on fresh topics' tail: a new group would start at the beginning, so
        # the steady phase uses its own store and counts only the steady events.
        store = TimedStore(work / "steady.duckdb")
        store.open()
        context = multiprocessing.get_context("spawn")
        sent_count = context.Value("q", 0)
        sender = context.Process(
            target=_steady, args=(broker.bootstrap, args.rate, args.seconds, sent_count)
        )
        rss.reset()
        target = [sys.maxsize]
        agent_task = asyncio.create_task(run_agent(broker.bootstrap, store, target, "bench-steady"))
        while store.first_call is None or _committed(store) < args.events:
            await asyncio.sleep(0.05)  # first drain the backlog, then measure the steady stream
        sender.start()
        await asyncio.to_thread(sender.join)
        target[0] = args.events + sent_count.value
        await agent_task
        latencies = _latencies(store)
        results["steady_rate_per_s"] = args.rate
        results["p50_latency_s"] = round(percentile(latencies, 0.50), 3)
        results["p99_latency_s"] = round(percentile(latencies, 0.99), 3)
        results["steady_peak_rss_mb"] = rss.peak_mb
        store.close()
    results["ratio_to_bare"] = round(
        results["ingest_events_per_s"] / results["bare_consumer_msgs_per_s"], 3
    )
    return results


def _committed(store: TimedStore) -> int:
    return sum(len(events) for _, events in store.commits)


def _latencies(store: TimedStore) -> list[float]:
    return [
        committed_at - e.occurred_at.timestamp()
        for committed_at, events in store.commits
        for e in events
        if e.event_id.startswith("steady-")
    ]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--naive-events", type=int, default=5_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    report(asyncio.run(main(parser.parse_args())))
