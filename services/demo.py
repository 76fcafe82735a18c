"""``make demo``: the whole loop on real offline data, on the embedded default.

1. Starts the control plane (bundled broker, DuckDB under FLYWHEEL_HOME).
2. Capture: the base model answers a stream of real emails (SpamAssassin corpus) sent through
   the SDK; users accept the right answers, a simulated reviewer corrects the wrong ones over
   raw Kafka; construction-FAQ answers arrive over HTTP and by `flywheel import`; malformed
   events on every path show the dead-letter side. Prints what was stored and rejected, why.
3. Learning: held-out accuracy before, a retraining cycle, the gate's decision, accuracy after.
4. A poisoned batch (a careless reviewer flips labels): the next candidate is rejected.
5. Serving: an inference server answers new emails with the champion (plain HTTP and the
   OpenAI SDK), users give feedback, and the review queue fills. The control plane and the
   server keep running; the demo prints the console's link and tokens (`make stop` ends them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kafka import KafkaProducer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from feedback.client import FlywheelClient
from feedback.sample_data import SampleExample, load_construction_faq, load_spam_emails
from schemas.topics import CORRECTIONS, FEEDBACK, INFERENCE
from services.settings import Settings

console = Console()
STREAM, HELD_OUT, POISON, FAQ_HTTP, FAQ_IMPORT, SERVED = 500, 100, 160, 40, 100, 30
SPAM_TASK = {
    "name": "spam",
    "kind": "label",
    "labels": ["spam", "ham"],
    "instruction": "Decide whether this email is spam or ham (a legitimate email).",
    "triggers": {"min_new_examples": 100_000},  # the demo starts its cycles by hand
    "gate": {"mode": "auto", "min_eval_size": 30, "min_delta": 0.0},
    # The default recipe (every setting auto): what a user gets. Only the gate's share
    # differs: 30% held out, about 150 eval examples, a tight paired CI on two CPU cores.
    "training": {"eval_fraction": 0.3},
}
FAQ_TASK = {
    "name": "faq",
    "kind": "text",
    "instruction": "Answer the customer's question about our construction services.",
    "triggers": {"min_new_examples": 100_000},
}


class Demo:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_id = uuid.uuid4().hex[:6]
        self.work = settings.home / "demo"
        self.work.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"http://{settings.api_host}:{settings.api_port}"
        self.admin: dict[str, str] = {}
        self.server: subprocess.Popen[bytes] | None = None

    # -- the control plane ----------------------------------------------------------------

    def start(self) -> None:
        console.rule("[bold]1. Starting the control plane")
        if (self.settings.run_dir / "control-plane.json").exists():
            console.print("stopping the services a previous demo left running")
            self.cli("down")
        log = open(self.settings.home / "demo" / "control-plane.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(  # its own session: it outlives the demo
            [sys.executable, "-m", "services.cli.main", "up"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the control plane exited; see {log.name}")
            token = self.settings.run_dir / "cli.token"
            try:
                if token.exists() and httpx.get(f"{self.url}/healthz", timeout=1).is_success:
                    self.admin = {"Authorization": f"Bearer {token.read_text().strip()}"}
                    console.print(
                        f"control plane up at {self.url}, bundled broker at "
                        f"{self.settings.bootstrap}, store {self.settings.db_path}"
                    )
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("the control plane did not start within 90 s")

    def stop(self) -> None:
        for process in (self.server, self.process):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(30)

    # -- serving --------------------------------------------------------------------------

    def serve(self, emails: list[SampleExample]) -> dict[str, Any]:
        console.rule("[bold]5. Serving: the champion answers, users react, reviewers get work")
        log = open(self.work / "inference-server.log", "ab")  # noqa: SIM115
        self.server = subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server_url = f"http://{self.settings.serve_host}:{self.settings.serve_port}"
        deadline = time.monotonic() + 120
        while True:
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the inference server did not start; see {log.name}")
            try:
                if httpx.get(f"{server_url}/healthz", timeout=1).json().get("status") == "ok":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        health = httpx.get(f"{server_url}/healthz").json()
        console.print(f"inference server up at {server_url}, serving {health['champions']}")
        tokens = {
            role: self.api(
                "POST", "/v1/tokens", {"role": role, "name": f"demo-{role}-{self.run_id}"}
            )["token"]
            for role in ("app", "reviewer", "operator")
        }
        import openai

        client = openai.OpenAI(base_url=f"{server_url}/v1", api_key=tokens["app"])
        right = 0
        app_headers = {"Authorization": f"Bearer {tokens['app']}"}
        with httpx.Client(base_url=server_url, timeout=60, headers=app_headers) as http:
            for i, email in enumerate(emails):
                if i % 2:  # an app that already speaks OpenAI only changes its base URL
                    reply = client.chat.completions.create(
                        model="spam", messages=[{"role": "user", "content": email.input}]
                    )
                    output, inference_id = reply.choices[0].message.content, reply.id
                else:
                    body = http.post(
                        "/v1/generate", json={"task": "spam", "input": email.input}
                    ).json()
                    output, inference_id = body["output"], body["inference_id"]
                right += output == email.output
                signal = "thumbs_up" if output == email.output else "thumbs_down"
                http.post(
                    "/v1/feedback",
                    json={"task": "spam", "inference_id": inference_id, "signal": signal},
                )
        console.print(
            f"the server answered {len(emails)} new emails ({len(emails) // 2} through the "
            f"OpenAI SDK): {right} right; users gave thumbs up or down on each"
        )
        time.sleep(2)
        queue = self.api("GET", "/v1/review/queue?task=spam", token=tokens["reviewer"])
        console.print(f"review queue: {queue['pending']} items waiting {queue['by_reason']}")
        return {
            "server_url": server_url,
            "served": len(emails),
            "served_right": right,
            "tokens": tokens,
            "queue": queue,
        }

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else self.admin
        response = httpx.request(
            method, f"{self.url}{path}", json=body, headers=headers, timeout=60
        )
        response.raise_for_status()
        return response.json()

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "services.cli.main", *args], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise SystemExit(f"flywheel {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    # -- capture --------------------------------------------------------------------------

    def capture(
        self, model: Champion, tokenizer: Any, stream: list[SampleExample]
    ) -> dict[str, str]:
        console.rule("[bold]2. Capture: real events through every path")
        for task in (SPAM_TASK, FAQ_TASK):
            self.api("POST", "/v1/tasks", {"task": task, "replace": True})
        app_token = self.api(
            "POST", "/v1/tokens", {"role": "app", "name": f"demo-capture-{self.run_id}"}
        )["token"]
        answers = self.answer(model, tokenizer, stream, "the base model answers the stream")
        wrong: dict[str, str] = {}
        with FlywheelClient(self.settings.bootstrap, spool_dir=self.work / "spool") as sdk:
            for example, answer in zip(stream, answers, strict=True):
                inference_id = sdk.log_inference(
                    task="spam",
                    input=example.input,
                    output=answer["prediction"],
                    base_model="smollm2-135m-instruct",
                    latency_ms=answer["latency_ms"],
                    mean_logprob=max(-100.0, answer["mean_logprob"]),
                    event_id=f"demo-{self.run_id}-{example.id}",
                    metadata={"source": "demo"},
                )
                if answer["prediction"] == example.output:
                    sdk.send_feedback(task="spam", inference_id=inference_id, signal="accepted")
                else:
                    wrong[inference_id] = example.output
        console.print(
            f"SDK: {len(stream)} inferences; the base model got {len(wrong)} wrong; "
            f"users accepted {len(stream) - len(wrong)}"
        )
        self.raw_producer(wrong)
        self.http(app_token)
        faq = load_construction_faq(seed=1)[FAQ_HTTP : FAQ_HTTP + FAQ_IMPORT]
        data = self.work / "faq-import.jsonl"
        data.write_text(
            "\n".join(json.dumps({"input": e.input, "output": e.output}) for e in faq)
            + "\n{not json}\n"
        )
        console.print("import: " + self.cli("import", "faq", "--data", str(data)).strip())
        self.wait_stored(len(stream))
        console.print(self.cli("status"))
        return wrong

    def raw_producer(self, wrong: dict[str, str]) -> None:
        """The reviewer tool writes straight to Kafka, following the published JSON Schema."""
        producer = KafkaProducer(bootstrap_servers=self.settings.bootstrap)
        now = datetime.now(UTC).isoformat()
        for inference_id, truth in wrong.items():
            producer.send(
                CORRECTIONS,
                json.dumps(
                    {
                        "type": "correction",
                        "event_id": f"fix-{inference_id}",
                        "occurred_at": now,
                        "task": "spam",
                        "inference_id": inference_id,
                        "corrected_output": truth,
                        "reviewer": "demo-reviewer",
                    }
                ).encode(),
                key=b"spam",
            )
        producer.send(INFERENCE, b"\x00\x01 not an event")
        producer.send(
            FEEDBACK,
            json.dumps(
                {
                    "type": "feedback",
                    "event_id": "bad-rating",
                    "occurred_at": now,
                    "task": "spam",
                    "inference_id": "x",
                    "signal": "rating",
                    "rating": 11,
                }
            ).encode(),
        )
        producer.send(
            INFERENCE,
            json.dumps(
                {
                    "type": "inference",
                    "event_id": "too-big",
                    "occurred_at": now,
                    "task": "spam",
                    "input": "x" * 200_000,
                    "output": "ham",
                    "base_model": "m",
                }
            ).encode(),
        )
        producer.flush()
        producer.close()
        console.print(f"raw Kafka: {len(wrong)} reviewer corrections + 3 malformed events")

    def http(self, token: str) -> None:
        now = datetime.now(UTC).isoformat()
        events: list[dict[str, Any]] = []
        for example in load_construction_faq(seed=1)[:FAQ_HTTP]:
            inference_id = f"faq-{self.run_id}-{example.id}"
            events.append(
                {
                    "type": "inference",
                    "event_id": inference_id,
                    "occurred_at": now,
                    "task": "faq",
                    "input": example.input,
                    "output": example.output,
                    "base_model": "smollm2-135m-instruct",
                }
            )
            events.append(
                {
                    "type": "feedback",
                    "event_id": f"ok-{inference_id}",
                    "occurred_at": now,
                    "task": "faq",
                    "inference_id": inference_id,
                    "signal": "accepted",
                }
            )
        events.append(
            {
                "type": "inference",
                "event_id": "nul",
                "occurred_at": now,
                "task": "faq",
                "input": "hi\u0000",
                "output": "x",
                "base_model": "m",
            }
        )
        events.append(
            {
                "type": "feedback",
                "event_id": "no-zone",
                "task": "faq",
                "occurred_at": "2026-01-01T00:00:00",
                "inference_id": "x",
                "signal": "thumbs_up",
            }
        )
        result = self.api("POST", "/v1/events", {"events": events}, token=token)
        console.print(
            f"HTTP: {result['accepted']} accepted, {result['rejected']} rejected: "
            + "; ".join(r["reason"] for r in result["results"] if r["reason"])
        )

    def wait_stored(self, minimum: int) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = self.api("GET", "/v1/status")
            if status["tasks"].get("spam", {}).get("ground_truth", 0) >= minimum:
                return
            time.sleep(0.5)

    # -- models ---------------------------------------------------------------------------

    def answer(
        self, champion: Champion, tokenizer: Any, examples: list[SampleExample], title: str
    ) -> list[dict[str, Any]]:
        """The champion's answers, its inputs cut as the inference server cuts them."""
        from schemas.tasks import TaskDefinition
        from training.auto_recipe import serving_lengths
        from training.chat_format import style_of
        from training.scoring import score

        task = TaskDefinition.model_validate(SPAM_TASK)
        lengths = serving_lengths(
            champion.recipe,
            task,
            tokenizer,
            default_answer_tokens=self.settings.serve_max_new_tokens,
        )
        rows = [{"id": e.id, "input": e.input, "output": e.output} for e in examples]
        started = time.perf_counter()
        with _progress() as progress:
            bar = progress.add_task(title, total=len(rows))
            scored = score(
                champion.model,
                tokenizer,
                style_of(task),
                rows,
                lengths=lengths,
                progress=lambda p: progress.update(bar, completed=p["step"]),
            )
        latency = 1000 * (time.perf_counter() - started) / max(1, len(rows))
        return [{**r, "latency_ms": latency} for r in scored]

    def accuracy(
        self, champion: Champion, tokenizer: Any, held_out: list[SampleExample], title: str
    ) -> float:
        answers = self.answer(champion, tokenizer, held_out, title)
        return sum(a["exact_match"] for a in answers) / len(answers)

    def cycle(self, title: str) -> dict[str, Any]:
        cycle_id = self.api("POST", "/v1/tasks/spam/cycles")["cycle_id"]
        with _progress() as progress:
            bar = progress.add_task(title, total=None)
            while True:
                cycle = self.api("GET", f"/v1/cycles/{cycle_id}")
                info = cycle.get("progress") or {}
                progress.update(
                    bar,
                    description=f"{title}: {cycle['state']}",
                    completed=info.get("step", 0),
                    total=info.get("total"),
                )
                if cycle["state"] in ("decided", "failed"):
                    break
                time.sleep(1)
        console.print(
            f"cycle {cycle_id}: [bold]{cycle['state']}[/bold] "
            f"verdict [bold]{cycle.get('verdict')}[/bold] {cycle.get('error') or ''}"
        )
        for reason in (cycle.get("decision") or {}).get("reasons", []):
            console.print(f"  - {reason}")
        return cycle


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@dataclass(frozen=True)
class Champion:
    """A model that answers (base, or base + the champion adapter) and how it was trained."""

    model: Any
    recipe: Any  # the adapter's stored ResolvedRecipe; None for the base model


def load_champion(settings: Settings, base_path: Path, adapter_id: str | None) -> Champion:
    from training.auto_recipe import stored_recipe
    from training.checkpoints import load_model, pick_device

    model = load_model(base_path, pick_device(), inference=True)
    if adapter_id is None:
        return Champion(model, None)
    from peft import PeftModel

    path = settings.adapters_dir / adapter_id
    return Champion(PeftModel.from_pretrained(model, path), stored_recipe(path))


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    settings = Settings()
    emails = load_spam_emails(STREAM + HELD_OUT + POISON + SERVED, seed=7)
    stream, held_out = emails[:STREAM], emails[STREAM : STREAM + HELD_OUT]
    poison = emails[STREAM + HELD_OUT : STREAM + HELD_OUT + POISON]
    served = emails[STREAM + HELD_OUT + POISON :]
    from training.checkpoints import load_tokenizer, resolve_base_model

    with console.status("preparing the base model (converted once, about 30 s)"):
        base_path = resolve_base_model(settings.base_model, settings.models_dir)
    tokenizer = load_tokenizer(base_path)
    demo = Demo(settings)
    try:
        demo.start()
        before_id = demo.api("GET", "/v1/tasks/spam")["champion"] if _has_task(demo) else None
        model = load_champion(settings, base_path, before_id)
        demo.capture(model, tokenizer, stream)
        (demo.work / "spam-held-out.jsonl").write_text(
            "\n".join(json.dumps({"input": e.input, "output": e.output}) for e in held_out) + "\n"
        )

        console.rule("[bold]3. Learning: a retraining cycle and the promotion gate")
        before = demo.accuracy(model, tokenizer, held_out, "held-out accuracy before")
        console.print(
            f"held-out accuracy of the current champion "
            f"({before_id or 'base model'}): [bold]{before:.2f}[/bold]"
        )
        first = demo.cycle("retraining on the corrections")
        champion = demo.api("GET", "/v1/tasks/spam")["champion"]
        after = demo.accuracy(
            load_champion(settings, base_path, champion),
            tokenizer,
            held_out,
            "held-out accuracy after",
        )
        console.print(
            f"held-out accuracy: [bold]{before:.2f} → {after:.2f}[/bold] "
            f"(champion {champion or 'base model'}, {HELD_OUT} emails never trained on)"
        )

        console.rule("[bold]4. A poisoned batch: a careless reviewer flips labels")
        flip = {"spam": "ham", "ham": "spam"}
        with FlywheelClient(settings.bootstrap, spool_dir=demo.work / "spool") as sdk:
            for example in poison:
                inference_id = sdk.log_inference(
                    task="spam",
                    input=example.input,
                    output=example.output,
                    base_model="smollm2-135m-instruct",
                    adapter_id=champion,
                    event_id=f"poison-{demo.run_id}-{example.id}",
                )
                sdk.send_correction(
                    task="spam",
                    inference_id=inference_id,
                    corrected_output=flip[example.output],
                    reviewer="careless-reviewer",
                )
        demo.wait_stored(STREAM + POISON)
        poisoned = demo.cycle("retraining on the poisoned batch")
        still = demo.api("GET", "/v1/tasks/spam")["champion"]
        console.print(
            f"champion after the poisoned cycle: [bold]{still or 'base model'}[/bold]"
            + (" (unchanged: the bad batch never reached production)" if still == champion else "")
        )
        serving = demo.serve(served)
        summary = {
            "held_out_before": before,
            "held_out_after": after,
            "held_out_examples": HELD_OUT,
            "first_verdict": first.get("verdict"),
            "poisoned_verdict": poisoned.get("verdict"),
            "champion": champion,
            "champion_after_poison": still,
            "served": serving["served"],
            "served_right": serving["served_right"],
            "review_queue": serving["queue"],
            "console_url": demo.url,
            "server_url": serving["server_url"],
        }
        (demo.work / "summary.json").write_text(json.dumps(summary, indent=2))
        console.rule("[bold]done: the service keeps running")
        tokens = serving["tokens"]
        console.print(
            f"[bold]Console:[/bold] {demo.url}  (log in with a token below; each is shown once)\n"
            f"  operator: {tokens['operator']}\n  reviewer: {tokens['reviewer']}\n"
            f"[bold]Inference server:[/bold] {serving['server_url']}/v1/generate, or the OpenAI "
            f"SDK with base_url={serving['server_url']}/v1 and api_key={tokens['app']}\n"
            f"Data lives in {settings.home}. `flywheel status`, `flywheel adapters list` and "
            f"`flywheel eval spam --data {demo.work / 'spam-held-out.jsonl'}` work now.\n"
            "[bold]Stop everything:[/bold] make stop  (or: .venv/bin/flywheel down)"
        )
    except BaseException:
        demo.stop()  # a failed or interrupted demo leaves nothing running
        raise


def _has_task(demo: Demo) -> bool:
    try:
        demo.api("GET", "/v1/tasks/spam")
    except httpx.HTTPStatusError:
        return False
    return True


if __name__ == "__main__":
    main()
