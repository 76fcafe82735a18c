"""``flywheel task create --from-file``: the task a file defines, or exit code 2 with the
one-line reason the file cannot be used."""

from __future__ import annotations

from pathlib import Path

from schemas.task_file import TaskFileError, load_task_file
from schemas.tasks import TaskDefinition
from services.cli.local_store import fail


def read_task_file(path: Path) -> TaskDefinition:
    """Load a task file for the CLI: a bad file is the caller's error (exit 2), not a crash."""
    try:
        return load_task_file(path)
    except TaskFileError as error:
        raise fail(str(error), 2) from error
