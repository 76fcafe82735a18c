"""CLI commands of the learning loop: tasks, cycles, adapters, promotions, evaluation."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from schemas.tasks import GatePolicy, TaskDefinition, TrainingRecipe, Triggers
from services.cli.local_store import fail, load_settings, via_api_or_store
from services.cli.task_file import read_task_file
from training.cycle_records import get_cycle, list_cycles
from training.registry import (
    RegistryError,
    champion,
    champion_history,
    list_adapters,
    rollback_target,
)
from training.registry import promote as promote_in_store
from training.task_records import TaskExistsError, create_task, get_task, list_tasks

console = Console()
task_app = typer.Typer(help="Define tasks.", no_args_is_help=True)
cycle_app = typer.Typer(help="Retraining cycles.", no_args_is_help=True)
adapters_app = typer.Typer(help="Trained adapters.", no_args_is_help=True)


@task_app.command("create")
def task_create(
    name: Annotated[str | None, typer.Argument(help="Task name (or give --from-file).")] = None,
    kind: Annotated[str, typer.Option(help="label or text")] = "label",
    labels: Annotated[str | None, typer.Option(help="Comma-separated labels.")] = None,
    instruction: Annotated[str | None, typer.Option(help="What the model is asked to do.")] = None,
    metric: Annotated[str | None, typer.Option(help="exact_match, token_f1, chrf or nll")] = None,
    min_new: Annotated[int, typer.Option(help="Retrain after this many new examples.")] = 50,
    cron: Annotated[str | None, typer.Option(help="Also retrain on this crontab.")] = None,
    gate_mode: Annotated[str, typer.Option(help="auto or manual promotion.")] = "manual",
    min_eval_size: Annotated[int, typer.Option(help="Smallest eval set to decide on.")] = 30,
    min_delta: Annotated[float, typer.Option(help="Required CI lower bound of the gain.")] = 0.0,
    from_file: Annotated[Path | None, typer.Option("--from-file", help="Task YAML.")] = None,
    replace: Annotated[bool, typer.Option(help="Redefine an existing task.")] = False,
    recipe: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A training recipe setting, KEY=VALUE (e.g. --set learning_rate=5e-4 "
            "--set max_seq_len=256); repeatable. Settings not given are auto.",
        ),
    ] = None,
) -> None:
    """Create a task from options or from a YAML file."""
    try:
        if from_file is not None:
            definition = read_task_file(from_file)
        else:
            if name is None or instruction is None:
                raise fail("give NAME and --instruction, or --from-file", 2)
            definition = TaskDefinition(
                name=name,
                kind=kind,
                instruction=instruction,
                primary_metric=metric,
                labels=[x.strip() for x in labels.split(",")] if labels else None,
                triggers=Triggers(min_new_examples=min_new, cron=cron),
                gate=GatePolicy(mode=gate_mode, min_eval_size=min_eval_size, min_delta=min_delta),
            )
        if recipe:
            given = definition.training.model_dump(exclude_defaults=True)
            training = TrainingRecipe.model_validate({**given, **recipe_settings(recipe)})
            definition = TaskDefinition.model_validate(
                {**definition.model_dump(), "training": training}
            )
    except ValidationError as error:
        raise fail(f"invalid task: {error}", 2) from error

    def local(connection: Any) -> None:
        try:
            create_task(connection, definition, replace=replace)
        except TaskExistsError as error:
            raise fail(str(error)) from error

    via_api_or_store(
        load_settings(),
        api=lambda c: c.post(
            "/v1/tasks", {"task": definition.model_dump(mode="json"), "replace": replace}
        ),
        local=local,
    )
    console.print(
        f"task [bold]{definition.name}[/bold] saved ({definition.kind}, "
        f"metric {definition.metric}, gate {definition.gate.mode})"
    )


def recipe_settings(pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` options as recipe fields: numbers as numbers, ``auto`` as is,
    target_modules as a comma-separated list. Unknown keys fail with the known ones."""
    known = TrainingRecipe.model_fields
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            raise fail(f"--set {pair}: give KEY=VALUE, e.g. --set learning_rate=5e-4", 2)
        if key not in known:
            raise fail(f"--set {key}: not a recipe setting; known: {', '.join(known)}", 2)
        if key == "target_modules":
            settings[key] = [m.strip() for m in value.split(",") if m.strip()]
            continue
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value  # auto, middle, balanced, ...
    return settings


@task_app.command("list")
def task_list() -> None:
    """All tasks."""
    tasks = via_api_or_store(
        load_settings(),
        api=lambda c: c.get("/v1/tasks"),
        local=lambda db: [t.model_dump(mode="json") for t in list_tasks(db)],
        read_only=True,
    )
    table = Table("task", "kind", "labels", "metric", "trigger", "gate")
    for t in tasks:
        definition = TaskDefinition.model_validate(t)
        table.add_row(
            definition.name,
            definition.kind,
            ",".join(definition.labels or []),
            definition.metric,
            f"{definition.triggers.min_new_examples} new"
            + (f" / {definition.triggers.cron}" if definition.triggers.cron else ""),
            definition.gate.mode,
        )
    console.print(table)


@task_app.command("show")
def task_show(name: str) -> None:
    """One task with its champion and champion history, as JSON."""

    def local(db: Any) -> dict[str, Any]:
        task = get_task(db, name)
        if task is None:
            raise fail(f"no task named {name}")
        return {
            **task.model_dump(mode="json"),
            "champion": champion(db, name),
            "champion_history": champion_history(db, name),
        }

    shown = via_api_or_store(
        load_settings(), api=lambda c: c.get(f"/v1/tasks/{name}"), local=local, read_only=True
    )
    sys.stdout.write(json.dumps(shown, indent=2) + "\n")


@cycle_app.command("run")
def cycle_run(
    task: str,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it until it is decided.")] = False,
) -> None:
    """Start a retraining cycle now (in the running control plane, or here when it is down)."""
    from services.cli.control_plane_client import ControlPlaneClient

    settings = load_settings()
    client = ControlPlaneClient.discover(settings)
    if client is None:
        cycle = _run_cycle_here(settings, task)
    else:
        try:
            cycle_id = client.post(f"/v1/tasks/{task}/cycles", {})["cycle_id"]
        except Exception as error:
            raise fail(f"could not start a cycle: {_detail(error)}") from error
        console.print(f"started cycle {cycle_id}")
        if not wait:
            return
        cycle = _follow(lambda: client.get(f"/v1/cycles/{cycle_id}"))
    _print_cycle(cycle)
    if cycle["state"] == "failed":
        raise typer.Exit(1)


def _run_cycle_here(settings: Any, task: str) -> dict[str, Any]:
    from services.control_plane.cycle_runner import CyclePaths, CycleRunner
    from services.control_plane.store_worker import StoreWorker

    async def run() -> dict[str, Any]:
        store = StoreWorker(settings.db_path)
        store.open()
        try:
            runner = CycleRunner(
                store=store,
                producer=None,
                paths=CyclePaths(
                    settings.base_model,
                    settings.models_dir,
                    settings.adapters_dir,
                    settings.snapshots_dir,
                    settings.cycles_dir,
                ),
                lease_s=settings.cycle_lease_s,
                timeout_s=settings.cycle_timeout_s,
            )
            cycle_id = await runner.start(task, trigger="manual (cli)")
            if cycle_id is None:
                raise fail(f"task {task} already has a running cycle")
            console.print(f"running cycle {cycle_id} here (the control plane is not up)")
            await asyncio.gather(*runner.running.values())
            return await store.call(get_cycle, cycle_id)
        finally:
            store.close()

    from services.control_plane.cycle_runner import CycleError

    try:
        return asyncio.run(run())
    except CycleError as error:
        raise fail(str(error)) from error


def _follow(fetch: Any) -> dict[str, Any]:
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        bar = progress.add_task("cycle", total=None)
        while True:
            cycle = fetch()
            info = cycle.get("progress") or {}
            progress.update(
                bar,
                description=f"{cycle['state']} {info.get('phase', '')}",
                completed=info.get("step", 0),
                total=info.get("total"),
            )
            if cycle["state"] in ("decided", "failed"):
                return cycle
            time.sleep(1.0)


def _print_cycle(cycle: dict[str, Any]) -> None:
    console.print(
        f"cycle {cycle['cycle_id']} of {cycle['task']}: [bold]{cycle['state']}[/bold]"
        + (f", verdict [bold]{cycle['verdict']}[/bold]" if cycle.get("verdict") else "")
    )
    if cycle.get("error"):
        console.print(f"  error: {cycle['error']}")
    decision = cycle.get("decision") or {}
    for reason in decision.get("reasons", []):
        console.print(f"  - {reason}")
    if line := _recipe_line((decision.get("evidence") or {}).get("training") or {}):
        console.print(f"  {line}")
    diagnosis = (decision.get("evidence") or {}).get("diagnosis") or []
    if diagnosis:
        console.print("why it failed:" if cycle.get("verdict") == "reject" else "notes:")
    for sentence in diagnosis:
        console.print(f"  * {sentence}", highlight=False)


def _recipe_line(training: dict[str, Any]) -> str:
    """What the cycle trained with, and the inputs it had to cut, in one line."""
    recipe = training.get("recipe")
    if not recipe:
        return ""
    line = (
        f"trained {recipe['steps']} steps at learning rate {recipe['learning_rate']:g}, "
        f"{recipe['max_seq_len']} tokens per example"
    )
    measured, cut = training.get("measured_examples", 0), training.get("inputs_cut", 0)
    if cut:
        line += (
            f"; inputs cut to fit in {cut} of {measured} training examples "
            f"({recipe['input_truncation']} of the input dropped; set max_seq_len to keep more)"
        )
    return line


@cycle_app.command("show")
def cycle_show(
    cycle_id: str,
    as_json: Annotated[bool, typer.Option("--json", help="The whole record as JSON.")] = False,
) -> None:
    """One cycle: the gate's verdict and reasons, why it failed, what it trained with, the
    learning-rate search's trials and the learning curve."""
    cycle = via_api_or_store(
        load_settings(),
        api=lambda c: c.get(f"/v1/cycles/{cycle_id}"),
        local=lambda db: get_cycle(db, cycle_id),
        read_only=True,
    )
    if cycle is None:
        raise fail(f"no cycle {cycle_id}; flywheel cycle list shows the recent ones")
    if as_json:
        sys.stdout.write(json.dumps(cycle, indent=2) + "\n")
        return
    _print_cycle(cycle)
    training = ((cycle.get("decision") or {}).get("evidence") or {}).get("training") or {}
    _print_search(training.get("search") or {})
    if curve := training.get("loss_curve"):
        losses = [loss for _, loss in curve]
        console.print(
            f"training loss over {curve[-1][0]} steps: {losses[0]:.3f} {_sparkline(losses)} "
            f"{losses[-1]:.3f}"
            + (
                f" (chance level {training['chance_loss']:.3f})"
                if training.get("chance_loss")
                else ""
            ),
            highlight=False,
        )


def _print_search(search: dict[str, Any]) -> None:
    """The learning-rate search of a cycle: why it ran (or not), and every trial."""
    if not search:
        return
    console.print(f"learning-rate search: {search.get('skipped') or search.get('reason', '')}")
    if search.get("stopped_early"):
        console.print(f"stopped early: {search['stopped_early']}")
    if not search.get("trials"):
        return
    table = Table(
        "learning rate",
        "steps",
        f"dev {search.get('metric', 'metric')}",
        "dev loss by step",
        "train loss",
    )
    for k, trial in enumerate(search["trials"]):
        dev_curve = trial.get("dev_curve") or []
        table.add_row(
            f"{trial['learning_rate']:g}"
            + (" (chosen)" if k == search.get("winner_trial") else ""),
            str(trial["steps"]),
            f"{trial['dev_metric']:.3f}",
            " → ".join(f"{loss:.3f} @{int(step)}" for step, loss in dev_curve)
            or f"{trial['dev_nll']:.3f}",
            f"{trial['first_loss']:.3f} → {trial['last_loss']:.3f}",
        )
    console.print(table)
    console.print(
        f"  on {search['dev_examples']} development examples carved from the "
        f"{search['dev_examples'] + search['fit_examples']} training examples; budget: "
        f"{search['budget']}",
        highlight=False,
    )


def _sparkline(values: list[float], width: int = 60) -> str:
    """``values`` as a line of block characters (high values tall), at most ``width`` wide."""
    if not values:
        return ""
    runs = min(width, len(values))
    means = [
        sum(chunk) / len(chunk)
        for k in range(runs)
        if (chunk := values[k * len(values) // runs : (k + 1) * len(values) // runs])
    ]
    low, high = min(means), max(means)
    blocks = "▁▂▃▄▅▆▇█"
    span = (high - low) or 1.0
    return "".join(blocks[int((v - low) / span * (len(blocks) - 1))] for v in means)


@cycle_app.command("list")
def cycle_list(task: Annotated[str | None, typer.Option(help="Only this task.")] = None) -> None:
    """Recent cycles, newest first."""
    cycles = via_api_or_store(
        load_settings(),
        api=lambda c: c.get("/v1/cycles" + (f"?task={task}" if task else "")),
        local=lambda db: list_cycles(db, task),
        read_only=True,
    )
    table = Table("cycle", "task", "state", "verdict", "started", "adapter")
    for c in cycles:
        table.add_row(
            c["cycle_id"],
            c["task"],
            c["state"],
            c.get("verdict") or "",
            c["started_at"][:19],
            c.get("adapter_id") or "",
        )
    console.print(table)


@adapters_app.command("list")
def adapters_list(task: Annotated[str | None, typer.Option(help="Only this task.")] = None) -> None:
    """Adapters with their lineage and eval metrics; * marks champions, ! adapters that
    learned from erased data (tainted)."""
    adapters = via_api_or_store(
        load_settings(),
        api=lambda c: c.get("/v1/adapters" + (f"?task={task}" if task else "")),
        local=lambda db: list_adapters(db, task),
        read_only=True,
    )
    table = Table("", "adapter", "task", "parent", "snapshot", "created")
    for a in adapters:
        parent = a["parent_adapter"] or "base"
        table.add_row(
            ("*" if a["champion"] else "") + ("!" if a.get("tainted") else ""),
            a["adapter_id"],
            a["task"],
            parent,
            a["snapshot_id"],
            a["created_at"][:19],
        )
    console.print(table)


def promote(task: str, adapter_id: str, reason: str = "") -> None:
    """Make ADAPTER_ID (or 'base') the champion of TASK by hand."""
    target = None if adapter_id == "base" else adapter_id
    _change_champion(
        task, target, action="promote", reason=reason, path=f"/v1/tasks/{task}/promote"
    )


def rollback(task: str, reason: str = "") -> None:
    """Put TASK's previous champion back."""
    _change_champion(
        task, None, action="rollback", reason=reason, path=f"/v1/tasks/{task}/rollback"
    )


def approve(cycle_id: str, reason: str = "") -> None:
    """Promote the candidate of a cycle that awaits approval (needs the running service)."""
    _cycle_verdict(cycle_id, "approve", reason)


def reject(cycle_id: str, reason: str = "") -> None:
    """Reject the candidate of a cycle that awaits approval (needs the running service)."""
    _cycle_verdict(cycle_id, "reject", reason)


def _change_champion(
    task: str, adapter_id: str | None, *, action: str, reason: str, path: str
) -> None:
    def local(db: Any) -> dict[str, Any]:
        """With the control plane down: the same one-transaction promotion it would make (files
        verified, regression set updated); the servers pick the champion up when they start."""
        try:
            target = rollback_target(db, task) if action == "rollback" else adapter_id
            return promote_in_store(
                db, task=task, adapter_id=target, actor="local-cli", action=action, reason=reason
            )
        except RegistryError as error:
            raise fail(str(error)) from error

    body: dict[str, Any] = {"reason": reason}
    if action == "promote":
        body["adapter_id"] = adapter_id
    message = via_api_or_store(load_settings(), api=lambda c: c.post(path, body), local=local)
    console.print(
        f"{task}: champion is now {message['adapter_id'] or 'the base model'} "
        f"(was {message['previous_adapter_id'] or 'the base model'})"
    )


def _cycle_verdict(cycle_id: str, verb: str, reason: str) -> None:
    from services.cli.control_plane_client import ControlPlaneClient

    client = ControlPlaneClient.discover(load_settings())
    if client is None:
        raise fail(f"{verb} needs the running control plane (flywheel up)")
    try:
        answer = client.post(f"/v1/cycles/{cycle_id}/{verb}", {"reason": reason})
    except Exception as error:
        raise fail(_detail(error)) from error
    console.print(json.dumps(answer))


def _detail(error: Exception) -> str:
    response = getattr(error, "response", None)
    if response is not None:
        try:
            return str(response.json().get("detail"))
        except ValueError:
            return response.text
    return str(error)


def evaluate(
    task: Annotated[str, typer.Argument(help="The task whose instruction and labels to use.")],
    data: Annotated[Path, typer.Option("--data", help='JSONL: {"input": ..., "output": ...}')],
    adapter: Annotated[str, typer.Option(help="champion, base, or an adapter id")] = "champion",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Score an adapter on your own held-out file: exact_match or token_f1/chrf, and nll."""
    from rich.progress import Progress

    from training.auto_recipe import serving_lengths
    from training.chat_format import style_of
    from training.scoring import aggregate, score

    settings = load_settings()
    definition, champion_id = via_api_or_store(
        settings,
        api=lambda c: (
            lambda t: (
                TaskDefinition.model_validate(
                    {k: v for k, v in t.items() if k not in ("champion", "champion_history")}
                ),
                t["champion"],
            )
        )(c.get(f"/v1/tasks/{task}")),
        local=lambda db: (get_task(db, task), champion(db, task)),
        read_only=True,
    )
    if definition is None:
        raise fail(f"no task named {task}")
    adapter_id = champion_id if adapter == "champion" else None if adapter == "base" else adapter
    try:
        examples = [
            {"id": str(i), **json.loads(line)}
            for i, line in enumerate(data.read_text(encoding="utf-8").splitlines())
            if line.strip()
        ]
    except (OSError, ValueError) as error:
        raise fail(f"cannot read {data}: {error}") from error
    bad = [
        e["id"]
        for e in examples
        if not isinstance(e.get("input"), str) or not isinstance(e.get("output"), str)
    ]
    if bad:
        raise fail(f"lines {', '.join(str(int(b) + 1) for b in bad[:5])} lack input/output text")
    with Progress(console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task("loading the model", total=len(examples))
        model, tokenizer, recipe = _load_for_eval(settings, adapter_id)
        progress.update(bar, description=f"scoring {adapter_id or 'base'}")
        rows = score(
            model,
            tokenizer,
            style_of(definition),
            examples,
            # cut and sized as the server answers with this adapter
            lengths=serving_lengths(
                recipe, definition, tokenizer, default_answer_tokens=settings.serve_max_new_tokens
            ),
            progress=lambda p: progress.update(bar, completed=p["step"]),
        )
    result = {"task": task, "adapter": adapter_id or "base", **aggregate(rows)}
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    for key, value in result.items():
        console.print(
            f"{key:>12}: {value:.4f}" if isinstance(value, float) else f"{key:>12}: {value}"
        )


def _load_for_eval(settings: Any, adapter_id: str | None) -> tuple[Any, Any, Any]:
    """(model, tokenizer, the adapter's stored recipe or None)."""
    from training.adapter_files import adapter_dir, verify_adapter
    from training.auto_recipe import stored_recipe
    from training.checkpoints import load_model, load_tokenizer, pick_device, resolve_base_model

    base = resolve_base_model(settings.base_model, settings.models_dir)
    model = load_model(base, pick_device(), inference=True)
    recipe = None
    if adapter_id is not None:
        from peft import PeftModel

        try:
            path = adapter_dir(settings.adapters_dir, adapter_id)
        except ValueError as error:
            raise fail(str(error)) from error
        if not path.is_dir():
            raise fail(f"no adapter {adapter_id} in {settings.adapters_dir}")
        try:
            verify_adapter(path)
        except ValueError as error:
            raise fail(str(error)) from error
        model = PeftModel.from_pretrained(model, path)
        recipe = stored_recipe(path)
    return model, load_tokenizer(base), recipe
