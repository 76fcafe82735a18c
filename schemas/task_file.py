"""Reading a task definition from a YAML file, within bounds.

A task file is a few hundred bytes of plain YAML, but ``--from-file`` will open whatever it is
given. So the file is capped in size, must be UTF-8 text, may not use aliases (a task needs
none, and nine nested aliases expand to a billion nodes) or nest deeply, and only YAML's safe
tags are read. Every refusal is one line that says what was wrong with which file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.tasks import TaskDefinition

MAX_TASK_FILE_BYTES = 64 * 1024
"""Larger than any real task file by far: the instruction itself is capped at 4,000 chars."""

MAX_TASK_FILE_DEPTH = 32
"""Deepest nesting read; a task file nests three levels (task, gate, field)."""


class TaskFileError(ValueError):
    """A task file that cannot be used; the message names the file and what was wrong."""


def load_task_file(path: Path) -> TaskDefinition:
    """The task a YAML file defines; raises TaskFileError with a one-line reason."""
    document = _parse(path, _read_text(path))
    if not isinstance(document, dict):
        raise TaskFileError(
            f"{path}: a task file is a YAML mapping (name:, kind:, instruction:, ...); "
            f"this one holds {type(document).__name__ if document is not None else 'nothing'}"
        )
    try:
        return TaskDefinition.model_validate(document)
    except ValidationError as error:
        raise TaskFileError(f"{path}: invalid task: {_explain(error)}") from error


def _read_text(path: Path) -> str:
    """The file's text, reading no more than the cap allows."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_TASK_FILE_BYTES + 1)
    except FileNotFoundError as error:
        raise TaskFileError(f"{path}: no such file; check the path given to --from-file") from error
    except IsADirectoryError as error:
        raise TaskFileError(f"{path}: is a directory; give the task's YAML file") from error
    except OSError as error:
        raise TaskFileError(f"{path}: cannot be read ({error.strerror or error})") from error
    if len(data) > MAX_TASK_FILE_BYTES:
        raise TaskFileError(
            f"{path}: larger than {MAX_TASK_FILE_BYTES // 1024} KiB; a task file is a few "
            "hundred bytes of YAML, is this the right file?"
        )
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), len(data), "NUL byte")
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TaskFileError(
            f"{path}: not UTF-8 text (byte {error.start}); a task file is YAML text"
        ) from error


def _parse(path: Path, text: str) -> Any:
    """One YAML document, read with the bounded loader; syntax errors name line and column."""
    loader = _TaskFileLoader(text)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        hint = (
            "; task files take plain values (text, numbers, lists, mappings)"
            if isinstance(error, yaml.constructor.ConstructorError)
            else ""
        )
        raise TaskFileError(f"{path}: {where}{error.problem or error.context}{hint}") from error
    except yaml.YAMLError as error:
        raise TaskFileError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from error
    finally:
        loader.dispose()


class _TaskFileLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and deep nesting while composing, before anything
    is expanded or recursed into."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases (*{event.anchor}) are not allowed in a task file; write the value out",
                event.start_mark,
            )
        if self._depth >= MAX_TASK_FILE_DEPTH:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"nested more than {MAX_TASK_FILE_DEPTH} levels deep",
                self.peek_event().start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _explain(error: ValidationError) -> str:
    """'field: problem; field: problem' for the first few problems, on one line."""
    parts = []
    for item in error.errors(include_url=False, include_input=False)[:5]:
        location = ".".join(str(part) for part in item["loc"]) or "task"
        parts.append(f"{location}: {item['msg'].removeprefix('Value error, ')}")
    if (more := error.error_count() - len(parts)) > 0:
        parts.append(f"and {more} more problem(s)")
    return "; ".join(parts)
