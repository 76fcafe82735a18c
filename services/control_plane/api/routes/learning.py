"""Tasks, cycles, adapters and promotions: the learning loop's API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field

from schemas.events import EventId, TaskName
from schemas.tasks import TaskDefinition
from services.control_plane.api.deps import AnyRole, Operator, State
from services.control_plane.cycle_runner import CycleError, CycleRunner
from services.control_plane.state import ControlPlaneState
from training.cycle_records import get_cycle, list_cycles, update_cycle
from training.registry import (
    AdapterRefusedError,
    RegistryError,
    audit,
    champion,
    champion_history,
    champions,
    list_adapters,
    rollback_target,
)
from training.task_records import TaskExistsError, create_task, get_task, list_tasks

router = APIRouter(tags=["learning loop"])


class TaskCreate(BaseModel):
    task: TaskDefinition
    replace: bool = False


class Reason(BaseModel):
    reason: str = Field(default="", max_length=2000)


class Promote(Reason):
    adapter_id: str | None = Field(description="null promotes the base model")


def _runner(state: ControlPlaneState) -> CycleRunner:
    if state.cycles is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "the cycle runner is not up")
    return state.cycles


@router.post("/v1/tasks", status_code=201, summary="Create (or replace) a task")
async def post_task(body: TaskCreate, state: State, who: Operator) -> dict[str, Any]:
    try:
        await state.store.call(create_task, body.task, replace=body.replace)
    except TaskExistsError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    await state.store.call(
        audit,
        actor=who.name,
        action="task:replace" if body.replace else "task:create",
        task=body.task.name,
        details={},
    )
    if state.scheduler is not None:
        await state.scheduler.refresh_cron_jobs()
    return body.task.model_dump(mode="json")


@router.get("/v1/tasks", summary="All tasks, each with its champion and since when")
async def get_tasks(state: State, _who: AnyRole) -> list[dict[str, Any]]:
    live = await state.store.call(champions)
    return [
        {
            **t.model_dump(mode="json"),
            "champion": live.get(t.name, {}).get("adapter_id"),
            "champion_since": live.get(t.name, {}).get("since"),
        }
        for t in await state.store.call(list_tasks)
    ]


@router.get("/v1/tasks/{name}", summary="One task, its champion and its champion history")
async def get_one_task(name: TaskName, state: State, _who: AnyRole) -> dict[str, Any]:
    task = await _existing(state, name)
    return {
        **task.model_dump(mode="json"),
        "champion": await state.store.call(champion, name),
        "champion_history": await state.store.call(champion_history, name),
    }


@router.post("/v1/tasks/{name}/cycles", status_code=202, summary="Start a retraining cycle")
async def post_cycle(name: TaskName, state: State, who: Operator) -> dict[str, Any]:
    try:
        cycle_id = await _runner(state).start(name, trigger="manual")
    except CycleError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error
    if cycle_id is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"task {name} already has a running cycle")
    await state.store.call(
        audit, actor=who.name, action="cycle:start", task=name, details={"cycle_id": cycle_id}
    )
    return {"cycle_id": cycle_id}


@router.get("/v1/cycles", summary="Recent cycles, newest first")
async def get_cycles(state: State, _who: Operator, task: TaskName | None = None) -> list[dict]:
    return await state.store.call(list_cycles, task)


@router.get("/v1/cycles/{cycle_id}", summary="One cycle with its gate evidence")
async def get_one_cycle(cycle_id: EventId, state: State, _who: Operator) -> dict[str, Any]:
    cycle = await state.store.call(get_cycle, cycle_id)
    if cycle is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no cycle {cycle_id}")
    return cycle


@router.get("/v1/adapters", summary="Adapters with lineage")
async def get_adapters(state: State, _who: Operator, task: TaskName | None = None) -> list[dict]:
    return await state.store.call(list_adapters, task)


@router.post("/v1/tasks/{name}/promote", summary="Make an adapter the champion by hand")
async def post_promote(name: TaskName, body: Promote, state: State, who: Operator) -> dict:
    await _existing(state, name)
    try:
        return await _runner(state).promote(
            name, body.adapter_id, actor=who.name, action="promote", reason=body.reason
        )
    except AdapterRefusedError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    except RegistryError as error:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(error)) from error


@router.post("/v1/tasks/{name}/rollback", summary="Put the previous champion back")
async def post_rollback(name: TaskName, body: Reason, state: State, who: Operator) -> dict:
    await _existing(state, name)
    try:
        target = await state.store.call(rollback_target, name)
        return await _runner(state).promote(
            name, target, actor=who.name, action="rollback", reason=body.reason
        )
    except RegistryError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error


@router.post("/v1/cycles/{cycle_id}/approve", summary="Promote a candidate awaiting approval")
async def post_approve(cycle_id: EventId, body: Reason, state: State, who: Operator) -> dict:
    cycle = await _awaiting(state, cycle_id)
    try:
        message = await _runner(state).approve(
            cycle["task"],
            cycle["adapter_id"],
            actor=who.name,
            reason=body.reason or f"approved candidate of {cycle_id}",
        )
    except RegistryError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    await state.store.call(update_cycle, cycle_id, verdict="approved")
    return message


@router.post("/v1/cycles/{cycle_id}/reject", summary="Reject a candidate awaiting approval")
async def post_reject(cycle_id: EventId, body: Reason, state: State, who: Operator) -> dict:
    cycle = await _awaiting(state, cycle_id)
    await state.store.call(update_cycle, cycle_id, verdict="rejected_by_operator")
    await state.store.call(
        audit,
        actor=who.name,
        action="reject",
        task=cycle["task"],
        details={"cycle_id": cycle_id, "reason": body.reason},
    )
    return {"cycle_id": cycle_id, "verdict": "rejected_by_operator"}


async def _existing(state: ControlPlaneState, name: str) -> TaskDefinition:
    """The task named ``name``; 404 when nobody created it, so no route invents a task."""
    task = await state.store.call(get_task, name)
    if task is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no task named {name}: create it first (flywheel task create, or POST /v1/tasks)",
        )
    return task


async def _awaiting(state: ControlPlaneState, cycle_id: EventId) -> dict[str, Any]:
    cycle = await state.store.call(get_cycle, cycle_id)
    if cycle is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no cycle {cycle_id}")
    if cycle["verdict"] != "await_approval":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"cycle {cycle_id} is not awaiting approval (verdict: {cycle['verdict']})",
        )
    return cycle
