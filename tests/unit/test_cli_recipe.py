"""The training recipe is settable from the CLI: ``task create --set KEY=VALUE``, with the
control plane down (the local store), and refused with the fix when a setting is wrong."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from services.cli.main import app


@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_recipe_settings_given_on_the_command_line_are_stored_the_rest_stay_auto(cli):
    made = cli(
        "task",
        "create",
        "notes",
        "--kind",
        "text",
        "--instruction",
        "Summarise the note.",
        "--set",
        "learning_rate=5e-4",
        "--set",
        "max_seq_len=256",
        "--set",
        "target_modules=q_proj,v_proj",
        "--set",
        "input_truncation=left",
    )
    assert made.exit_code == 0, made.output
    training = json.loads(cli("task", "show", "notes").output)["training"]
    assert training["learning_rate"] == 5e-4 and training["max_seq_len"] == 256
    assert training["target_modules"] == ["q_proj", "v_proj"]
    assert training["input_truncation"] == "left"
    assert training["max_steps"] == "auto" and training["max_answer_tokens"] == "auto"


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("learning_rat=1e-3", "not a recipe setting; known: learning_rate"),
        ("learning_rate", "give KEY=VALUE"),
        ("learning_rate=fast", "learning_rate"),
    ],
)
def test_a_wrong_recipe_setting_is_refused_with_what_to_give(cli, setting, message):
    result = cli("task", "create", "t", "--kind", "text", "--instruction", "x", "--set", setting)
    assert result.exit_code == 2 and message in result.output, result.output
