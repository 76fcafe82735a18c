"""Serving: latency and throughput of the champion adapter against the base model in the same
run and the same server, then a promotion landing under load: how long until the new
champion answers, and how many requests failed meanwhile.

    .venv/bin/python benchmarks/serving.py

Runs the real stack on the default model (SmolLM2-135M): bundled broker, control plane, one
`flywheel serve`. Two identical tasks on real emails, one with a champion adapter (trained
by a short cycle), one on the base model, are asked the same inputs alternately, one at a
time (latency) and from three threads (requests/s). Last line: one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time

import httpx
import psutil
from _common import (
    QUICK_SPAM_TASK,
    PeakRss,
    free_port,
    report,
    spawn,
    temporary_home,
    wait_healthy,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from feedback.sample_data import load_spam_emails

LATENCY_REQUESTS = 100  # per side
LOAD_S = 10.0
THREADS = 3
TASK = QUICK_SPAM_TASK


class Stack:
    def __init__(self) -> None:
        self.home = temporary_home("flywheel-serving-")
        self.api_port, self.serve_port = free_port(), free_port()
        self.env = {
            **os.environ,
            "FLYWHEEL_HOME": str(self.home),
            "FLYWHEEL_API_PORT": str(self.api_port),
            "FLYWHEEL_SERVE_PORT": str(self.serve_port),
            "FLYWHEEL_EMBEDDED_BROKER_PORT": str(free_port()),
        }
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.server_url = f"http://127.0.0.1:{self.serve_port}"
        self.processes: list[subprocess.Popen[bytes]] = []
        self.admin: dict[str, str] = {}

    def spawn(self, command: str) -> subprocess.Popen[bytes]:
        process = spawn(command, self.env, self.home)
        self.processes.append(process)
        return process

    def call(self, method: str, path: str, body: object = None) -> dict:
        response = httpx.request(
            method, f"{self.url}{path}", json=body, headers=self.admin, timeout=120
        )
        response.raise_for_status()
        return response.json()

    def cycle(self, task: str) -> dict:
        cycle_id = self.call("POST", f"/v1/tasks/{task}/cycles")["cycle_id"]
        while True:
            cycle = self.call("GET", f"/v1/cycles/{cycle_id}")
            if cycle["state"] in ("decided", "failed"):
                return cycle
            time.sleep(1)

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            process.wait(60)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    rss = PeakRss()
    stack = Stack()
    emails = load_spam_emails(400, seed=11)
    try:
        stack.spawn("up")
        wait_healthy(stack.url, stack.home)
        token = (stack.home / "run" / "cli.token").read_text().strip()
        stack.admin = {"Authorization": f"Bearer {token}"}
        for name in ("spam", "spam-base"):
            stack.call("POST", "/v1/tasks", {"task": {**TASK, "name": name}})
        data = stack.home / "examples.jsonl"
        data.write_text(
            "".join(json.dumps({"input": e.input, "output": e.output}) + "\n" for e in emails[:120])
        )
        subprocess.run(
            [sys.executable, "-m", "services.cli.main", "import", "spam", "--data", str(data)],
            env=stack.env,
            check=True,
            capture_output=True,
        )
        while stack.call("GET", "/v1/status")["tasks"].get("spam", {}).get("ground_truth") != 120:
            time.sleep(0.5)
        first = stack.cycle("spam")
        assert first["verdict"] == "promote", first
        champion = first["adapter_id"]
        server = stack.spawn("serve")
        wait_healthy(stack.server_url, stack.home)
        app = stack.call("POST", "/v1/tokens", {"role": "app", "name": "bench"})["token"]
        headers = {"Authorization": f"Bearer {app}"}
        inputs = [e.input for e in emails[200:]]
        client = httpx.Client(base_url=stack.server_url, headers=headers, timeout=60)

        def ask(task: str, text: str) -> tuple[float, dict]:
            started = time.perf_counter()
            response = client.post("/v1/generate", json={"task": task, "input": text})
            response.raise_for_status()
            return time.perf_counter() - started, response.json()

        for text in inputs[:5]:  # warm-up
            ask("spam", text), ask("spam-base", text)
        latency: dict[str, list[float]] = {"spam": [], "spam-base": []}
        for text in inputs[:LATENCY_REQUESTS]:
            for task in ("spam-base", "spam"):
                seconds, body = ask(task, text)
                latency[task].append(seconds)
                expected = champion if task == "spam" else None
                assert body["adapter_id"] == expected, body

        def load(task: str, seconds: float, record: list) -> None:
            stop = time.monotonic() + seconds
            local = httpx.Client(base_url=stack.server_url, headers=headers, timeout=60)
            i = 0
            while time.monotonic() < stop and not halt.is_set():
                i += 1
                try:
                    r = local.post(
                        "/v1/generate", json={"task": task, "input": inputs[i % len(inputs)]}
                    )
                    record.append(
                        (
                            time.monotonic(),
                            r.status_code,
                            r.json().get("adapter_id") if r.is_success else None,
                        )
                    )
                except httpx.HTTPError:
                    record.append((time.monotonic(), 0, None))

        halt = threading.Event()
        rps = {}
        for task in ("spam-base", "spam"):
            records: list = []
            threads = [
                threading.Thread(target=load, args=(task, LOAD_S, records)) for _ in range(THREADS)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rps[task] = len(records) / LOAD_S

        # A promotion landing under load: a second candidate waits for approval, then the
        # operator approves it while three threads keep asking.
        stack.call(
            "POST",
            "/v1/tasks",
            {"task": {**TASK, "gate": {**TASK["gate"], "mode": "manual"}}, "replace": True},
        )
        more = stack.home / "more.jsonl"
        more.write_text(
            "".join(
                json.dumps({"input": e.input, "output": e.output}) + "\n" for e in emails[120:200]
            )
        )
        subprocess.run(
            [sys.executable, "-m", "services.cli.main", "import", "spam", "--data", str(more)],
            env=stack.env,
            check=True,
            capture_output=True,
        )
        while stack.call("GET", "/v1/status")["tasks"]["spam"]["ground_truth"] != 200:
            time.sleep(0.5)
        second = stack.cycle("spam")
        assert second["verdict"] == "await_approval", second
        swap_records: list = []
        threads = [
            threading.Thread(target=load, args=("spam", 60.0, swap_records)) for _ in range(THREADS)
        ]
        for t in threads:
            t.start()
        time.sleep(3)
        approved_at = time.monotonic()
        stack.call("POST", f"/v1/cycles/{second['cycle_id']}/approve", {"reason": "benchmark"})
        deadline = approved_at + 30
        while time.monotonic() < deadline:
            if any(a == second["adapter_id"] for _, _, a in list(swap_records)):
                break
            time.sleep(0.01)
        time.sleep(3)
        halt.set()
        for t in threads:
            t.join()
        served_new = [t for t, _, a in swap_records if a == second["adapter_id"]]
        swap_s = min(served_new) - approved_at if served_new else None
        stale_after = [
            r
            for r in swap_records
            if served_new and r[0] > min(served_new) + 1 and r[2] == champion
        ]
        failed = sum(1 for r in swap_records if r[1] != 200)
        health = httpx.get(f"{stack.server_url}/healthz").json()
        server_rss = psutil.Process(server.pid).memory_info().rss / 2**20
        base_p50, adapter_p50 = (
            statistics.median(latency[t]) * 1000 for t in ("spam-base", "spam")
        )
        report(
            {
                "base_p50_ms": round(base_p50, 1),
                "adapter_p50_ms": round(adapter_p50, 1),
                "overhead_p50": round(adapter_p50 / base_p50 - 1, 3),
                "base_p99_ms": round(percentile(latency["spam-base"], 0.99) * 1000, 1),
                "adapter_p99_ms": round(percentile(latency["spam"], 0.99) * 1000, 1),
                "base_requests_per_s": round(rps["spam-base"], 2),
                "adapter_requests_per_s": round(rps["spam"], 2),
                "swap_s": swap_s and round(swap_s, 3),
                "swap_load_s": health["last_swap_s"] and round(health["last_swap_s"], 3),
                "failed_requests": failed,
                "requests_during_swap": len(swap_records),
                "stale_answers_after_swap": len(stale_after),
                "server_rss_mb": round(server_rss, 1),
                "peak_rss_mb": rss.peak_mb,
            }
        )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
