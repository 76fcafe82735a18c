"""Task definitions in the store."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from schemas.tasks import TaskDefinition


class TaskExistsError(Exception):
    """A task of that name exists already."""


def create_task(
    connection: duckdb.DuckDBPyConnection, task: TaskDefinition, *, replace: bool = False
) -> None:
    now = datetime.now(UTC).replace(tzinfo=None)
    exists = connection.execute("SELECT 1 FROM tasks WHERE name = ?", [task.name]).fetchone()
    if exists and not replace:
        raise TaskExistsError(f"task {task.name} exists; pass --replace to redefine it")
    if exists:
        connection.execute(
            "UPDATE tasks SET spec = ?, updated_at = ? WHERE name = ?",
            [task.model_dump_json(), now, task.name],
        )
    else:
        connection.execute(
            "INSERT INTO tasks (name, spec, created_at, updated_at) VALUES (?, ?, ?, ?)",
            [task.name, task.model_dump_json(), now, now],
        )


def get_task(connection: duckdb.DuckDBPyConnection, name: str) -> TaskDefinition | None:
    row = connection.execute("SELECT spec FROM tasks WHERE name = ?", [name]).fetchone()
    return TaskDefinition.model_validate_json(row[0]) if row else None


def list_tasks(connection: duckdb.DuckDBPyConnection) -> list[TaskDefinition]:
    rows = connection.execute("SELECT spec FROM tasks ORDER BY name").fetchall()
    return [TaskDefinition.model_validate_json(r[0]) for r in rows]
