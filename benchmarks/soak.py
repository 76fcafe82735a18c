"""Load and soak: a steady stream of events for ten minutes with inference requests and a
promotion in the middle; at the end, every event sent is stored or rejected, by id, once.

    .venv/bin/python benchmarks/soak.py [--seconds 600] [--rate 1000]

The real stack on the default model: bundled broker, control plane, one inference server.
Apps send through the SDK (1% of the events are malformed on purpose, sent raw, and must
land in the dead-letter table with their ids); a client asks the inference server all the
time; a quarter in, a retraining cycle starts and promotes a new champion under that load.
Afterwards the control plane is stopped and the DuckDB file is read directly. Last line: one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import duckdb
import httpx
from _common import (
    QUICK_SPAM_TASK,
    PeakRss,
    free_port,
    report,
    spawn,
    temporary_home,
    wait_healthy,
)
from kafka import KafkaProducer

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from feedback.client import FlywheelClient
from feedback.sample_data import load_spam_emails
from schemas.topics import INFERENCE

TASK = QUICK_SPAM_TASK


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--rate", type=int, default=1000, help="events per second")
    args = parser.parse_args()
    rss = PeakRss()
    home = temporary_home("flywheel-soak-")
    broker_port, api_port, serve_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "FLYWHEEL_HOME": str(home),
        "FLYWHEEL_API_PORT": str(api_port),
        "FLYWHEEL_SERVE_PORT": str(serve_port),
        "FLYWHEEL_EMBEDDED_BROKER_PORT": str(broker_port),
    }
    bootstrap = f"127.0.0.1:{broker_port}"
    url, server_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{serve_port}"

    plane = spawn("up", env, home)
    server = None
    try:
        wait_healthy(url, home)
        admin = {"Authorization": f"Bearer {(home / 'run' / 'cli.token').read_text().strip()}"}
        httpx.post(f"{url}/v1/tasks", json={"task": TASK}, headers=admin).raise_for_status()
        emails = load_spam_emails(300, seed=21)
        data = home / "examples.jsonl"
        data.write_text(
            "".join(json.dumps({"input": e.input, "output": e.output}) + "\n" for e in emails[:150])
        )
        subprocess.run(
            [sys.executable, "-m", "services.cli.main", "import", "spam", "--data", str(data)],
            env=env,
            check=True,
            capture_output=True,
        )
        server = spawn("serve", env, home)
        wait_healthy(server_url, home)
        app = httpx.post(
            f"{url}/v1/tokens", json={"role": "app", "name": "soak"}, headers=admin
        ).json()["token"]

        stop = threading.Event()
        sent: list[str] = []
        malformed: list[str] = []
        answers: list[tuple[int, str | None, str | None]] = []

        def produce() -> None:
            client = FlywheelClient(bootstrap, spool_dir=home / "soak-spool", linger_s=0.05)
            raw = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
            started, n = time.monotonic(), 0
            while not stop.is_set():
                due = int((time.monotonic() - started) * args.rate)
                while n < due:
                    n += 1
                    if n % 100 == 0:  # malformed on purpose: a task name with a space
                        event_id = f"bad-{n}"
                        raw.send(
                            INFERENCE,
                            json.dumps(
                                {
                                    "type": "inference",
                                    "event_id": event_id,
                                    "task": "not a task",
                                    "occurred_at": datetime.now(UTC).isoformat(),
                                    "input": "x",
                                    "output": "y",
                                    "base_model": "soak",
                                }
                            ).encode(),
                        )
                        malformed.append(event_id)
                    else:
                        sent.append(
                            client.log_inference(
                                task="soak",
                                input=f"event {n} {uuid.uuid4().hex}",
                                output="ham",
                                base_model="soak",
                                event_id=f"soak-{n}",
                            )
                        )
                time.sleep(0.01)
            client.close(60)
            raw.flush(60)
            raw.close()

        def ask() -> None:
            with httpx.Client(
                base_url=server_url, timeout=60, headers={"Authorization": f"Bearer {app}"}
            ) as http:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        r = http.post(
                            "/v1/generate",
                            json={"task": "spam", "input": emails[150 + i % 150].input},
                        )
                        body = r.json() if r.is_success else {}
                        answers.append(
                            (r.status_code, body.get("inference_id"), body.get("adapter_id"))
                        )
                    except httpx.HTTPError:
                        answers.append((0, None, None))

        threads = [threading.Thread(target=produce), threading.Thread(target=ask)]
        t0 = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(args.seconds / 4)  # the cycle then trains under load; it lands mid-run
        cycle_id = httpx.post(f"{url}/v1/tasks/spam/cycles", headers=admin).json()["cycle_id"]
        while True:
            cycle = httpx.get(f"{url}/v1/cycles/{cycle_id}", headers=admin, timeout=30).json()
            if cycle["state"] in ("decided", "failed"):
                break
            time.sleep(1)
        promoted_at = time.monotonic()
        time.sleep(max(0.0, args.seconds - (time.monotonic() - t0)))
        stop.set()
        for thread in threads:
            thread.join(120)
        elapsed = time.monotonic() - t0
        served_new = [a for a in answers if a[2] == cycle.get("adapter_id")]
        inference_ids = [a[1] for a in answers if a[1]]
        expected = len(sent) + len(malformed) + len(inference_ids) + 150  # + the imports
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            status = httpx.get(f"{url}/v1/status", headers=admin, timeout=30).json()
            landed = (
                status["events"]["inference"]["stored"] + status["events"]["inference"]["rejected"]
            )
            if landed >= expected:
                break
            time.sleep(1)
        server.terminate()
        server.wait(60)
        plane.terminate()
        plane.wait(60)
        db = duckdb.connect(str(home / "flywheel.duckdb"), read_only=True)
        stored = {r[0] for r in db.execute("SELECT event_id FROM inferences").fetchall()}
        rejected = [
            r[0]
            for r in db.execute(
                "SELECT event_id FROM rejected_events WHERE event_id IS NOT NULL"
            ).fetchall()
        ]
        db.close()
        missing_events = [i for i in sent if i not in stored]
        missing_answers = [i for i in inference_ids if i not in stored]
        missing_rejections = set(malformed) - set(rejected)
        report(
            {
                "seconds": round(elapsed, 1),
                "target_events_per_s": args.rate,
                "events_per_s": round((len(sent) + len(malformed)) / elapsed, 1),
                "events_sent": len(sent) + len(malformed),
                "events_stored": len(set(sent) & stored),
                "events_rejected": len(set(malformed) & set(rejected)),
                "rejected_twice": len(rejected) - len(set(rejected)),
                "missing": len(missing_events) + len(missing_rejections),
                "inference_requests": len(answers),
                "inference_failed": sum(1 for a in answers if a[0] != 200),
                "answers_captured": len(inference_ids) - len(missing_answers),
                "answers_missing": len(missing_answers),
                "promotion_verdict": cycle.get("verdict"),
                "answers_by_new_champion": len(served_new),
                "promotion_landed_at_s": round(promoted_at - t0, 1),
                "sent_equals_stored_plus_rejected": not missing_events and not missing_rejections,
                "peak_rss_mb": rss.peak_mb,
            }
        )
    finally:
        for process in (server, plane):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(60)


if __name__ == "__main__":
    main()
