"""The task zoo: what Flywheel's defaults do on six real tasks nobody here tuned for, against
what a user would do by hand with the standard tools, measured in the same run.

    .venv/bin/python benchmarks/task_zoo.py [--quick] [--curve PNG] [--tasks spam,...]
        [--results DIR]

Needs `make zoo-data`. For every task (``benchmarks/zoo``: 400 training examples, 200 more,
200 held out) it does what a new user does, through the whole stack (``flywheel up``: bundled
broker, ingest, DuckDB, training worker, gate): ``flywheel task create`` with the default
definition (only name, kind, labels and instruction differ, gate mode auto),
``flywheel import`` of the 400, ``flywheel cycle run --wait``; then the same with the 200 more
(a warm-started second cycle). ``flywheel eval`` scores the base model and each champion on
the held-out examples, which never reach Flywheel. The baseline (``benchmarks/zoo/baseline``:
transformers ``Trainer`` + peft LoRA r16/alpha 32 on every projection, lr 2e-4, 3 epochs, whole
sequences) trains on the same 400 examples, in its own process.

``--quick``: three tasks, one cycle each, with the baseline. ``--curve PNG``: also one cycle
per task on the first 50, 100, 200 and 400 training examples, the held-out metric of each
candidate drawn against the number of examples.

``--results DIR``: each finished task's row is written to DIR/NAME.json and a later run with
the same number of cycles reuses it (``tasks_wall_s`` sums the rows' own wall times), so the
full run can be spread over several sittings on a small machine.

Last line: ``{"n_tasks", "tasks_improved", "tasks": {NAME: {...}}}``; ``tasks_improved`` counts
the tasks whose first cycle was promoted with the lower bound of the gate's 95% CI above zero.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from _common import PeakRss, free_port, report, spawn, temporary_home

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.zoo import TASKS, ZooTask, load_task

QUICK_TASKS = ("noun-supersense", "word-definition", "modern-english")
"""The three with short inputs: a label task with eight labels and two generation tasks (the
baseline on whole emails alone takes longer than --quick may)."""
CURVE_SIZES = (50, 100, 200, 400)


class Stack:
    """``flywheel up`` in a fresh home, and the CLI a user types against it."""

    def __init__(self, home: Path | None = None, env: dict[str, str] | None = None) -> None:
        """A fresh ``home`` (by default a temporary one sharing ./.flywheel's converted base
        model); ``env`` adds settings (a test gives the tiny model as FLYWHEEL_BASE_MODEL)."""
        self.home = home or temporary_home("flywheel-zoo-")
        self.home.mkdir(parents=True, exist_ok=True)
        api_port = free_port()
        self.url = f"http://127.0.0.1:{api_port}"
        self.env = {
            **os.environ,
            **(env or {}),
            "FLYWHEEL_HOME": str(self.home),
            "FLYWHEEL_API_PORT": str(api_port),
            "FLYWHEEL_EMBEDDED_BROKER_PORT": str(free_port()),
            # Cycles start when this benchmark says so, after the whole import (a count
            # trigger would start one on the first 50 examples to arrive).
            "FLYWHEEL_SCHEDULER_INTERVAL_S": "86400",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_VERBOSITY": "error",
        }
        self.process = spawn("up", self.env, self.home)
        self.headers = self._wait_up()

    def _wait_up(self) -> dict[str, str]:
        token = self.home / "run" / "cli.token"
        for _ in range(480):
            try:
                if token.exists() and httpx.get(f"{self.url}/healthz", timeout=1).is_success:
                    return {"Authorization": f"Bearer {token.read_text().strip()}"}
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"the control plane did not start; see {self.home / 'up.log'}")

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "services.cli.main", *args],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(
                f"flywheel {' '.join(args[:2])} failed:\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", headers=self.headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def import_examples(self, task: str, examples: list[dict], name: str) -> None:
        """``flywheel import``, then wait until the ingest has stored all of them."""
        before = self.ground_truth(task)
        path = self.home / f"{name}.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in examples))
        self.cli("import", task, "--data", str(path))
        deadline = time.monotonic() + 300
        while self.ground_truth(task) < before + len(examples):
            if time.monotonic() > deadline:
                raise SystemExit(f"{task}: the import did not reach the store within 300 s")
            time.sleep(0.5)

    def ground_truth(self, task: str) -> int:
        status = self.get("/v1/status")
        return int(status["tasks"].get(task, {}).get("ground_truth", 0))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def create_task(stack: Stack, task: ZooTask, name: str | None = None) -> str:
    """``flywheel task create`` with the default definition: name, kind, labels, instruction,
    and the gate promoting on its own (the user in issue 11 did the same)."""
    name = name or task.name
    args = ["task", "create", name, "--kind", task.kind, "--instruction", task.instruction]
    if task.labels:
        args += ["--labels", ",".join(task.labels)]
    stack.cli(*args, "--gate-mode", "auto")
    return name


def run_cycle(stack: Stack, name: str, rss: PeakRss) -> dict[str, Any]:
    """``flywheel cycle run --wait``: its wall time, peak RSS of the stack, verdict and CI."""
    rss.reset()
    started = time.monotonic()
    stack.cli("cycle", "run", name, "--wait")
    seconds = time.monotonic() - started
    cycle = stack.get(f"/v1/cycles?task={name}")[0]
    decision = cycle.get("decision") or {}
    gate = (decision.get("evidence") or {}).get("eval") or {}
    training = (decision.get("evidence") or {}).get("training") or {}
    search = training.get("search") or {}
    return {
        "verdict": cycle.get("verdict"),
        "adapter_id": cycle.get("adapter_id"),
        "ci_low": _round(gate.get("delta_low")),
        "ci_high": _round(gate.get("delta_high")),
        "gate_eval_n": gate.get("n"),
        "reasons": decision.get("reasons", [])[:3],
        "diagnosis": (decision.get("evidence") or {}).get("diagnosis"),
        "steps": (training.get("recipe") or {}).get("steps"),
        "chosen_learning_rate": (training.get("recipe") or {}).get("learning_rate"),
        "max_seq_len": (training.get("recipe") or {}).get("max_seq_len"),
        "inputs_cut": training.get("inputs_cut"),
        "searched": bool(search.get("ran")),
        "seconds": round(seconds, 1),
        "peak_rss_mb": rss.peak_mb,
    }


def held_out(stack: Stack, name: str, task: ZooTask, adapter: str) -> float:
    """``flywheel eval`` on the held-out examples: what the user's app would get."""
    path = stack.home / f"{name}-held-out.jsonl"
    if not path.exists():
        path.write_text("".join(json.dumps(e) + "\n" for e in task.held_out))
    out = stack.cli("eval", name, "--data", str(path), "--adapter", adapter, "--json")
    return round(float(json.loads(out.strip().splitlines()[-1])[task.metric]), 4)


def baseline(stack: Stack, task: ZooTask) -> dict[str, Any]:
    """The hand-made baseline on the same training examples, in its own process (its peak
    RSS is its own), on the stack's base model."""
    spec = stack.home / f"{task.name}-task.json"
    spec.write_text(json.dumps(dataclasses.asdict(task)))
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.zoo.baseline", "--task-file", str(spec)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[1],
        env=stack.env,
    )
    if result.returncode != 0:
        return {"error": (result.stderr or result.stdout)[-500:]}
    return json.loads(result.stdout.strip().splitlines()[-1])


def one_task(stack: Stack, task: ZooTask, rss: PeakRss, *, cycles: int) -> dict[str, Any]:
    name = create_task(stack, task)
    row: dict[str, Any] = {"kind": task.kind, "metric": task.metric}
    row["base"] = held_out(stack, name, task, "base")
    stack.import_examples(name, task.train, f"{name}-train")
    first = run_cycle(stack, name, rss)
    row["cycle1"] = held_out(stack, name, task, "champion")
    row["cycle1_ci_low"] = first["ci_low"]
    if first["verdict"] != "promote" and first["adapter_id"]:
        first["candidate_held_out"] = held_out(stack, name, task, first["adapter_id"])
    row["cycle1_detail"] = first
    row["cycle_s"] = first["seconds"]
    progress({"task": name, "cycle1": first, "base": row["base"], "cycle1_held_out": row["cycle1"]})
    if cycles > 1:
        stack.import_examples(name, task.more, f"{name}-more")
        second = run_cycle(stack, name, rss)
        row["cycle2"] = held_out(stack, name, task, "champion")
        row["cycle2_ci_low"] = second["ci_low"]
        row["cycle2_detail"] = second
        progress({"task": name, "cycle2": second, "cycle2_held_out": row["cycle2"]})
    made = baseline(stack, task)
    row["baseline"] = _round(made.get("value"))
    row["baseline_s"] = made.get("wall_s")
    row["baseline_detail"] = made
    progress({"task": name, "baseline": made})
    return row


def curve(
    stack: Stack, task: ZooTask, rss: PeakRss, sizes: tuple[int, ...] = CURVE_SIZES
) -> dict[int, float]:
    """Held-out metric of one default cycle's candidate per number of training examples."""
    points: dict[int, float] = {}
    for size in sizes:
        name = create_task(stack, task, f"{task.name}-n{size}")
        stack.import_examples(name, task.train[:size], name)
        cycle = run_cycle(stack, name, rss)
        if cycle["adapter_id"]:
            points[size] = held_out(stack, name, task, cycle["adapter_id"])
        progress({"curve": task.name, "examples": size, "held_out": points.get(size)})
    return points


def draw_curves(curves: dict[str, dict[int, float]], bases: dict[str, float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for name, points in curves.items():
        sizes = sorted(points)
        line = axis.plot(sizes, [points[s] for s in sizes], marker="o", label=name)[0]
        if name in bases:
            axis.axhline(bases[name], color=line.get_color(), linestyle=":", linewidth=1)
    axis.set_xscale("log")
    sizes = sorted({size for points in curves.values() for size in points})
    axis.set_xticks(sizes, [str(size) for size in sizes])
    axis.set_xlabel("training examples (one default cycle)")
    axis.set_ylabel("held-out metric (exact match or token F1)")
    axis.set_title("Task zoo: held-out metric against examples (dotted: base model)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def saved_rows(results_dir: Path, tasks: list[ZooTask], cycles: int) -> dict[str, Any]:
    """The rows an earlier run kept for these tasks, measured with the same number of cycles
    and on the metric the default definition decides on today (a row from before a change of
    default is measured again, not mixed in)."""
    rows: dict[str, Any] = {}
    for task in tasks:
        path = results_dir / f"{task.name}.json"
        if not path.exists():
            continue
        row = json.loads(path.read_text())
        if row.get("cycles") == cycles and row.get("metric") == task.metric:
            rows[task.name] = row
    return rows


def progress(event: dict[str, Any]) -> None:
    sys.stderr.write(json.dumps(event) + "\n")
    sys.stderr.flush()


def _round(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)


def run_zoo(
    tasks: list[ZooTask],
    stack: Stack,
    *,
    cycles: int,
    curve_png: Path | None,
    curve_sizes: tuple[int, ...] = CURVE_SIZES,
    results_dir: Path | None = None,
) -> dict[str, Any]:
    """Every task through ``stack`` (stopped at the end), and the summary. With
    ``results_dir``, each finished task's row is kept there and a later run with the same
    number of cycles reuses it: a full run can span several sittings."""
    rss = PeakRss()
    results = saved_rows(results_dir, tasks, cycles) if results_dir else {}
    curves: dict[str, dict[int, float]] = {}
    started = time.monotonic()
    try:
        for task in tasks:
            if task.name in results:
                progress({"task": task.name, "resumed_from": str(results_dir)})
                continue
            task_started = time.monotonic()
            row = one_task(stack, task, rss, cycles=cycles)
            row.update(cycles=cycles, task_s=round(time.monotonic() - task_started, 1))
            results[task.name] = row
            if results_dir:
                results_dir.mkdir(parents=True, exist_ok=True)
                (results_dir / f"{task.name}.json").write_text(json.dumps(row, indent=1))
        if curve_png is not None:
            for task in tasks:
                curves[task.name] = curve(stack, task, rss, curve_sizes)
    finally:
        stack.stop()
    if curve_png is not None:
        bases = {name: row["base"] for name, row in results.items()}
        draw_curves(curves, bases, curve_png)
    improved = sum(
        1
        for row in results.values()
        if row["cycle1_detail"]["verdict"] == "promote" and (row["cycle1_ci_low"] or 0) > 0
    )
    summary: dict[str, Any] = {
        "n_tasks": len(results),
        "tasks_improved": improved,
        "wall_s": round(time.monotonic() - started, 1),
        "tasks_wall_s": round(sum(row.get("task_s", 0) for row in results.values()), 1),
        "tasks": results,
    }
    if curves:
        summary["curves"] = {name: {str(k): v for k, v in c.items()} for name, c in curves.items()}
    return summary


def main(args: argparse.Namespace) -> None:
    names = args.tasks or (list(QUICK_TASKS) if args.quick else list(TASKS))
    tasks = [load_task(name) for name in names]  # fails early, naming `make zoo-data`
    cycles = 1 if args.quick else 2
    report(run_zoo(tasks, Stack(), cycles=cycles, curve_png=args.curve, results_dir=args.results))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="three tasks, one cycle each")
    parser.add_argument("--curve", type=Path, default=None, help="also draw the learning curves")
    parser.add_argument(
        "--results", type=Path, default=None, help="keep each task's row here; reuse kept rows"
    )
    parser.add_argument(
        "--tasks", type=lambda text: text.split(","), default=None, help="spam,noun-supersense"
    )
    main(parser.parse_args())
