"""``flywheel task create --from-file``: a task file is read within bounds, and whatever is
wrong with it (an alias bomb, an unsafe tag, a missing, binary, huge or invalid file) is
reported in one line with exit code 2, never a hang or a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schemas.task_file import MAX_TASK_FILE_BYTES, TaskFileError, load_task_file

VALID = """\
name: invoices
kind: label
labels: [invoice, other]
instruction: Is this email an invoice?
gate:
  mode: auto
"""

# "Billion laughs": nine levels of nine aliases expand to 9**9 strings.
ALIAS_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(ord('a') + i)}: &{chr(ord('a') + i)} [{','.join(['*' + chr(ord('a') + i - 1)] * 9)}]\n"
    for i in range(1, 9)
)


def flywheel(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The CLI as an operator runs it, in a narrow terminal: a one-line message stays one line."""
    env = {
        **os.environ,
        "FLYWHEEL_HOME": str(home),
        "COLUMNS": "60",
    }  # a narrow terminal must not break the line
    return subprocess.run(
        [sys.executable, "-m", "services.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def write(tmp_path: Path, content: str | bytes, name: str = "task.yaml") -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_a_valid_file_gives_its_task(tmp_path):
    task = load_task_file(write(tmp_path, VALID))
    assert (task.name, task.kind, task.labels, task.gate.mode) == (
        "invoices",
        "label",
        ["invoice", "other"],
        "auto",
    )


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (ALIAS_BOMB, "line 2, column 8: aliases (*a) are not allowed"),
        ("name: &n x\nkind: *n\n", "line 2, column 7: aliases (*n) are not allowed"),
        (
            "name: !!python/object/apply:os.system [echo hi]\n",
            "line 1, column 7: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'",
        ),
        ("name: [unclosed\n", "line 2, column 1: expected ',' or ']'"),
        ("[" * 5000 + "]" * 5000, "nested more than 32 levels deep"),
        ("- just\n- a list\n", "a task file is a YAML mapping"),
        ("", "a task file is a YAML mapping"),
        (
            "name: invoices\nkind: label\nlabels: [a]\ninstruction: x\ngate: {mode: sometimes}\n",
            "gate.mode: Input should be 'auto' or 'manual'",
        ),
        (
            "name: invoices\nkind: label\nlabels: [a]\ninstruction: x\n",
            "task: a label task needs at least two distinct labels",
        ),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not UTF-8 text"),
        (b"name: x\x00y\n", "not UTF-8 text"),
        ("# padding\n" * (MAX_TASK_FILE_BYTES // 10 + 1) + VALID, "larger than 64 KiB"),
    ],
)
def test_a_bad_file_is_refused_in_one_line_saying_what_is_wrong(tmp_path, content, reason):
    path = write(tmp_path, content)
    with pytest.raises(TaskFileError) as caught:
        load_task_file(path)
    message = str(caught.value)
    assert reason in message
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


def test_a_missing_file_or_a_directory_is_named(tmp_path):
    with pytest.raises(TaskFileError, match=r"missing\.yaml: no such file"):
        load_task_file(tmp_path / "missing.yaml")
    with pytest.raises(TaskFileError, match="is a directory"):
        load_task_file(tmp_path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (ALIAS_BOMB, "aliases (*a) are not allowed"),
        ("name: !!python/object/apply:os.system [echo pwned]\n", "could not determine"),
        (b"\xff\xfe\x00b\x00i\x00n", "not UTF-8 text"),
        (None, "no such file"),
    ],
)
def test_the_cli_refuses_a_bad_file_quickly_in_one_line_with_exit_code_2(tmp_path, content, reason):
    path = tmp_path / "missing.yaml" if content is None else write(tmp_path, content)
    started = time.monotonic()
    result = flywheel("task", "create", "--from-file", str(path), home=tmp_path / "home")
    assert time.monotonic() - started < 20  # the bomb used to grow to 1.28 GB in 20 s
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), result.stderr
    assert reason in lines[0]
    assert "pwned" not in result.stdout


def test_the_cli_saves_a_task_from_a_valid_file(tmp_path):
    home = tmp_path / "home"
    created = flywheel("task", "create", "--from-file", str(write(tmp_path, VALID)), home=home)
    assert created.returncode == 0, created.stderr
    listed = flywheel("task", "list", home=home)
    assert "invoices" in listed.stdout and "auto" in listed.stdout
