"""Feedback to champion: seconds from the last of 200 reviewer corrections to the new
champion being promoted, on the default model (SmolLM2-135M) on this CPU, through the whole
stack: SDK → bundled broker → ingest → DuckDB → scheduler trigger → snapshot → training
worker → evaluation → gate → registry.

    .venv/bin/python benchmarks/feedback_to_champion.py

The base model's answers are real (the same scorer the service uses), so the corrections are
the real mistakes of the base model on real emails. The task trains with the default recipe,
as a user's would. Last line: one JSON object.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
from _common import PeakRss, report, spawn, temporary_home

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from feedback.client import FlywheelClient
from feedback.sample_data import load_spam_emails
from schemas.tasks import TaskDefinition
from training.auto_recipe import serving_lengths
from training.chat_format import style_of
from training.checkpoints import (
    load_model,
    load_tokenizer,
    pick_device,
    resolve_base_model,
)
from training.scoring import score

CORRECTIONS = 200
TASK = {
    "name": "spam",
    "kind": "label",
    "labels": ["spam", "ham"],
    "instruction": "Decide whether this email is spam or ham (a legitimate email).",
    "triggers": {"min_new_examples": CORRECTIONS},
    "gate": {"mode": "auto", "min_eval_size": 30, "min_delta": 0.0},
}


def main() -> None:
    rss = PeakRss()
    home = temporary_home("flywheel-f2c-")
    base = resolve_base_model(None, home / "models")
    env = {
        **os.environ,
        "FLYWHEEL_HOME": str(home),
        "FLYWHEEL_API_PORT": "8391",
        "FLYWHEEL_EMBEDDED_BROKER_PORT": "19391",
        "FLYWHEEL_SCHEDULER_INTERVAL_S": "1",
    }
    plane = spawn("up", env, home)
    try:
        url, headers = wait_up(home)
        httpx.post(f"{url}/v1/tasks", json={"task": TASK}, headers=headers).raise_for_status()
        emails = load_spam_emails(2 * CORRECTIONS + 200, seed=5)
        task = TaskDefinition.model_validate(TASK)
        tokenizer = load_tokenizer(base)
        rows = [{"id": e.id, "input": e.input, "output": e.output} for e in emails]
        answers = score(  # as the inference server answers with the base model
            load_model(base, pick_device(), inference=True),
            tokenizer,
            style_of(task),
            rows,
            lengths=serving_lengths(None, task, tokenizer, default_answer_tokens=64),
        )
        wrong = [a for a in answers if a["exact_match"] == 0][:CORRECTIONS]
        inputs = {r["id"]: r["input"] for r in rows}
        if len(wrong) < CORRECTIONS:
            raise SystemExit(f"only {len(wrong)} base-model mistakes in the sample")
        sdk = FlywheelClient("127.0.0.1:19391", spool_dir=home / "spool")
        for a in wrong:
            sdk.log_inference(
                task="spam",
                input=inputs[a["id"]],
                output=a["prediction"],
                base_model="smollm2-135m-instruct",
                event_id=f"inf-{a['id']}",
            )
        sdk.flush()
        for a in wrong:
            sdk.send_correction(
                task="spam",
                inference_id=f"inf-{a['id']}",
                corrected_output=a["reference"],
                reviewer="bench",
            )
        sdk.flush()
        last_correction = time.monotonic()
        rss.reset()
        while True:
            task = httpx.get(f"{url}/v1/tasks/spam", headers=headers).json()
            cycles = httpx.get(f"{url}/v1/cycles?task=spam", headers=headers).json()
            if task["champion"]:
                break
            if cycles and cycles[0]["state"] in ("decided", "failed"):
                raise SystemExit(
                    f"no promotion: {cycles[0].get('verdict')} "
                    f"{cycles[0].get('error')} {cycles[0].get('decision')}"
                )
            time.sleep(0.5)
        seconds = time.monotonic() - last_correction
        evidence = cycles[0]["decision"]["evidence"]["eval"] if cycles else {}
        report(
            {
                "seconds": round(seconds, 1),
                "corrections": CORRECTIONS,
                "eval_examples": evidence.get("n"),
                "champion_metric": evidence.get("champion"),
                "candidate_metric": evidence.get("candidate"),
                "peak_rss_mb": rss.peak_mb,
            }
        )
    finally:
        plane.terminate()
        plane.wait(30)


def wait_up(home: Path) -> tuple[str, dict[str, str]]:
    url = "http://127.0.0.1:8391"
    for _ in range(240):
        token = home / "run" / "cli.token"
        try:
            if token.exists() and httpx.get(f"{url}/healthz", timeout=1).is_success:
                return url, {"Authorization": f"Bearer {token.read_text().strip()}"}
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit("the control plane did not start")


if __name__ == "__main__":
    main()
