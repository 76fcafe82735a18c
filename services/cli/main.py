"""The ``flywheel`` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from services.cli import canary as canary_commands
from services.cli import console as console_commands
from services.cli import forget as forget_command
from services.cli import learning, maintenance
from services.cli.home import open_private_home
from services.cli.local_store import fail, load_settings
from services.settings import Settings

app = typer.Typer(
    help="Flywheel: production outputs and corrections in, better adapters out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
schemas_app = typer.Typer(help="The event contract.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
app.add_typer(token_app, name="token")
app.add_typer(learning.task_app, name="task")
app.add_typer(learning.cycle_app, name="cycle")
app.add_typer(learning.adapters_app, name="adapters")
app.add_typer(canary_commands.canary_app, name="canary")
for command in (learning.promote, learning.approve, learning.reject, learning.rollback):
    app.command()(command)
app.command("eval")(learning.evaluate)
app.command()(console_commands.quality)
app.command()(console_commands.audit)
for command in (maintenance.gc, maintenance.backup, maintenance.restore):
    app.command()(command)
app.command()(forget_command.forget)
console = Console()
errors = Console(stderr=True, soft_wrap=True)  # an error stays one line, whatever the width


@app.command()
def up() -> None:
    """Run the control plane: ingest, HTTP API and (without FLYWHEEL_KAFKA_BOOTSTRAP) the
    bundled broker. Ctrl-C stops everything cleanly."""
    from feedback.exceptions import FeedbackError
    from services.control_plane.main import run
    from services.errors import ServiceError
    from services.logging_setup import configure_logging

    settings = load_settings()
    open_private_home(settings)
    configure_logging(settings.log_level, settings.home / "logs" / "flywheel.log")
    try:
        run(settings)
    except (ServiceError, FeedbackError) as error:
        raise fail(str(error)) from error


@app.command()
def serve(
    backend: Annotated[
        str,
        typer.Option(
            help="builtin: this process runs the model; vllm: a capturing gateway in front of "
            "the vLLM replicas of FLYWHEEL_VLLM_URLS.",
        ),
    ] = "builtin",
) -> None:
    """Run an inference server (FLYWHEEL_SERVE_PORT, default 8001): each task answered by its
    champion adapter, swapped in place on promotion. Needs a running control plane."""
    from feedback.exceptions import FeedbackError
    from services.errors import ServiceError
    from services.inference_server.main import instance_name, run
    from services.logging_setup import configure_logging
    from services.vllm_serving.gateway_main import run as run_gateway
    from training.checkpoints import BaseModelError

    if backend not in ("builtin", "vllm"):
        raise fail(f"--backend {backend!r}: choose builtin or vllm")
    settings = load_settings()
    open_private_home(settings)
    configure_logging(settings.log_level, settings.home / "logs" / f"{instance_name(settings)}.log")
    runner = run_gateway if backend == "vllm" else run
    try:
        runner(settings, progress=lambda message: errors.print(f"[dim]… {message}[/dim]"))
    except (ServiceError, FeedbackError, BaseModelError) as error:
        raise fail(str(error)) from error


@app.command()
def train(
    job: Annotated[Path | None, typer.Argument(help="One cycle directory to run now.")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="Run queued jobs as they come.")] = False,
) -> None:
    """Train on this machine for a control plane with FLYWHEEL_TRAINING=remote: the store
    (FLYWHEEL_HOME) must be mounted here at the same path."""
    from services.training_worker import run_job
    from services.training_worker import watch as watch_queue
    from training import job_queue

    settings = load_settings()
    open_private_home(settings)
    if job is not None:
        if not (job / "job.json").exists():
            raise fail(f"{job} holds no job.json")
        job_queue.claim(job)
        ok = run_job(job)
        console.print(f"{job.name}: {'done' if ok else 'failed'}")
        raise typer.Exit(0 if ok else 1)
    console.print(f"waiting for training jobs in {settings.cycles_dir} (Ctrl-C stops)")
    try:
        watch_queue(settings.cycles_dir, once=not watch, report=console.print)
    except KeyboardInterrupt:
        console.print("stopped")


@app.command()
def down(
    timeout_s: Annotated[float, typer.Option(help="Seconds to wait for each process.")] = 30,
) -> None:
    """Stop the control plane and the inference servers started from this FLYWHEEL_HOME."""
    import os
    import signal
    import socket
    import time

    settings = load_settings()
    files = sorted(settings.run_dir.glob("server-*.json"))
    files += [settings.run_dir / "control-plane.json"]  # servers first, then the plane
    stopped = 0
    for path in files:
        try:
            started = json.loads(path.read_text())
            if started.get("host", socket.gethostname()) != socket.gethostname():
                continue  # a process on another machine sharing the store
            pid = int(started["pid"])
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError, KeyError):
            continue
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and path.exists():
            time.sleep(0.2)
        stopped += 1
        console.print(f"stopped {path.stem} (pid {pid})")
    if not stopped:
        console.print("nothing was running from this FLYWHEEL_HOME")


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Stored and rejected events per event type and per task."""
    summary = _status_summary(load_settings())
    if as_json:
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    _print_status(summary)


def _status_summary(settings: Settings) -> dict[str, Any]:
    from feedback.exceptions import FeedbackError
    from feedback.status import store_summary
    from feedback.store import connect
    from services.cli.control_plane_client import ControlPlaneClient, ControlPlaneRefused

    client = ControlPlaneClient.discover(settings)
    if client is not None:
        try:
            return client.get("/v1/status")
        except ControlPlaneRefused as error:
            raise fail(str(error)) from error
    try:
        connection = connect(settings.db_path, read_only=True)
    except FeedbackError as error:
        raise fail(str(error)) from error
    try:
        summary = store_summary(connection)
    finally:
        connection.close()
    summary["service"] = {"running": False}
    return summary


def _print_status(summary: dict[str, Any]) -> None:
    running = summary.get("service", {}).get("running")
    console.print(f"control plane: {'[green]running[/green]' if running else 'not running'}")
    table = Table("event type", "stored", "rejected", title="events")
    for event_type, counts in summary["events"].items():
        table.add_row(event_type, str(counts["stored"]), str(counts["rejected"]))
    console.print(table)
    if summary.get("rejected_unknown_type"):
        console.print(f"rejected with no readable event type: {summary['rejected_unknown_type']}")
    if summary["tasks"]:
        per_task = Table(
            "task",
            "inference",
            "feedback",
            "correction",
            "ground truth",
            "champion",
            "latest cycle",
            title="per task (stored / rejected)",
        )
        for task, entry in summary["tasks"].items():
            cells = [f"{c['stored']} / {c['rejected']}" for c in entry["events"].values()]
            per_task.add_row(
                task,
                *cells,
                str(entry["ground_truth"]),
                entry.get("champion") or "base",
                _cycle_cell(entry),
            )
        console.print(per_task)
    if summary.get("awaiting_inference"):
        console.print(f"{summary['awaiting_inference']} feedback/corrections await their inference")
    for alert in summary.get("live_alerts", []):
        console.print(
            f"[red]drift alert[/red] {alert['raised_at']} {alert['task']} "
            f"({alert['action']}): {alert['reason']}"
        )
    if summary["top_rejection_reasons"]:
        console.print("top rejection reasons:")
        for item in summary["top_rejection_reasons"]:
            console.print(f"  {item['count']:>6}  {item['reason']}")


def _cycle_cell(entry: dict[str, Any]) -> str:
    cycle = entry.get("latest_cycle")
    if not cycle:
        return "-"
    progress = cycle.get("progress") or {}
    step = f" {progress['step']}/{progress['total']}" if progress.get("total") else ""
    verdict = f" ({cycle['verdict']})" if cycle.get("verdict") else ""
    return f"{cycle['state']}{step}{verdict}"


@app.command("import")
def import_examples(
    task: Annotated[str, typer.Argument(help="Task the examples belong to.")],
    data: Annotated[Path, typer.Option("--data", help='JSONL: {"input": ..., "output": ...}')],
) -> None:
    """Import existing examples as ground truth, through Kafka like live events."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from feedback.importer import import_records

    settings = load_settings()
    if not data.is_file():
        raise fail(f"{data} is not a file")
    lines = data.read_text(encoding="utf-8", errors="replace").splitlines()
    try:
        producer = KafkaProducer(
            bootstrap_servers=settings.bootstrap,
            linger_ms=20,
            max_block_ms=5_000,
            client_id="flywheel-import",
        )
    except KafkaError as error:
        raise fail(
            f"cannot reach Kafka at {settings.bootstrap} ({error}): start the service first "
            "(flywheel up) or set FLYWHEEL_KAFKA_BOOTSTRAP"
        ) from error
    sent, problems = 0, []
    with Progress(console=errors, transient=True) as progress:
        bar = progress.add_task(f"importing {data.name}", total=len(lines))
        futures = []
        for record in import_records(lines, task=task, source=data.name):
            futures.append(producer.send(record.topic, record.value, key=record.key))
            if record.problem:
                problems.append((record.line_number, record.problem))
            sent += 1
            progress.advance(bar)
        producer.flush(timeout=60)
        failed = sum(1 for f in futures if f.failed())
    producer.close()
    if failed:
        raise fail(f"{failed} of {sent} examples were not delivered to Kafka; run the import again")
    console.print(
        f"sent {sent} examples of task [bold]{task}[/bold] to Kafka; "
        f"{sent - len(problems)} valid, {len(problems)} will be rejected"
    )
    for line, problem in problems[:10]:
        console.print(f"  line {line}: {problem}")


@schemas_app.command("export")
def schemas_export(directory: Annotated[Path, typer.Argument(help="Where to write them.")]) -> None:
    """Write one JSON Schema per event type, for producers in any language."""
    from schemas.export import export_schemas

    for path in export_schemas(directory):
        console.print(f"wrote {path}")


@token_app.command("create")
def token_create(
    role: Annotated[str, typer.Option("--role", help="app, reviewer, operator, admin or server")],
    name: Annotated[
        str | None,
        typer.Option("--name", help="Who or what will use it (unique); default <role>-<hex>."),
    ] = None,
) -> None:
    """Create a token and print it once; only its hash is stored."""
    from services.cli.local_store import via_api_or_store
    from services.control_plane.tokens import ROLES, create_token, default_token_name

    if role not in ROLES:
        raise fail(f"unknown role {role!r}; choose one of {', '.join(ROLES)}", 2)
    name = name or default_token_name(role)

    def local(connection: Any) -> str:
        try:
            return create_token(connection, role=role, name=name)
        except ValueError as error:  # a taken or malformed name
            raise fail(str(error)) from error

    token = via_api_or_store(
        load_settings(),
        api=lambda client: client.post("/v1/tokens", {"role": role, "name": name})["token"],
        local=local,
    )
    errors.print(f"created a {role} token named {name}; it is shown only now:")
    sys.stdout.write(token + "\n")


def main() -> None:  # pragma: no cover - console entry point
    logging.basicConfig(level=logging.WARNING)
    app()


if __name__ == "__main__":
    app()
