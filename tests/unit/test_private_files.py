"""Flywheel's data is its user's alone: the home and data directories are created 0700 (an
existing home is tightened), the store file is 0600, and a home that cannot be created is
one clear error naming FLYWHEEL_HOME."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedback.exceptions import StoreError
from feedback.private_files import private_dir, private_home
from feedback.store import connect


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual login umask (022), under which files are created world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_a_new_directory_is_private_even_under_a_permissive_umask(tmp_path, permissive_umask):
    created = private_dir(tmp_path / "a" / "home")
    assert created == tmp_path / "a" / "home"
    assert mode(created) == 0o700


def test_an_existing_world_readable_directory_is_tightened(tmp_path, permissive_umask, caplog):
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    (home / "notes").write_text("kept")
    with caplog.at_level("WARNING"):
        private_dir(home)
    assert mode(home) == 0o700
    assert (home / "notes").read_text() == "kept"
    assert "0755" in caplog.text and "0700" in caplog.text


def test_the_home_makes_every_later_file_private(tmp_path, permissive_umask):
    home = private_home(tmp_path / "home")
    assert os.umask(0o022) == 0o077  # what private_home set for the rest of the process
    assert mode(home) == 0o700


def test_the_store_file_is_private_even_under_a_permissive_umask(tmp_path, permissive_umask):
    home = tmp_path / "home"
    connect(home / "flywheel.duckdb").close()
    assert mode(home) == 0o700
    assert mode(home / "flywheel.duckdb") == 0o600


def test_an_existing_world_readable_store_is_tightened_when_opened(tmp_path, permissive_umask):
    path = tmp_path / "flywheel.duckdb"
    connect(path).close()
    path.chmod(0o644)
    connect(path).close()
    assert mode(path) == 0o600


@pytest.mark.parametrize(
    ("home", "reason"),
    [
        (Path("/proc/flywheel"), "cannot be created"),
        (None, "is not a directory"),
    ],
)
def test_a_home_that_cannot_be_made_is_one_error_naming_the_setting(
    tmp_path, permissive_umask, home, reason
):
    if home is None:
        home = tmp_path / "a-file"
        home.write_text("not a directory")
    with pytest.raises(StoreError) as caught:
        private_home(home)
    message = str(caught.value)
    assert message.startswith(f"FLYWHEEL_HOME={home} ")
    assert reason in message and "\n" not in message
