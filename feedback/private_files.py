"""Flywheel's data belongs to the user that runs it: directories 0700, files 0600.

FLYWHEEL_HOME holds every event, every correction and the API token hashes, so no other local
user may read anything in it. The long-running processes set a umask of 077 before they create
anything (``private_home``): then DuckDB's file and WAL, the spool, snapshots, adapters, logs
and run files are all private without each writer having to remember. The home itself is
created 0700, and tightened when it already exists with looser bits.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

from feedback.exceptions import StoreError

log = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077
"""New files 0600, new directories 0700."""


def private_home(home: Path) -> Path:
    """Make everything this process creates from now on private, then create the home 0700.
    Call it first thing in a process that writes under FLYWHEEL_HOME."""
    os.umask(PRIVATE_UMASK)
    return private_dir(home, setting="FLYWHEEL_HOME")


def private_dir(path: Path, *, setting: str | None = None) -> Path:
    """Create ``path`` (and its missing parents) usable by this user only, or tighten it to
    0700 if it exists and is ours. ``setting`` names the variable that chose the path, for
    the error. Raises StoreError with a one-line reason when it cannot be made."""
    name = f"{setting}={path}" if setting else str(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise StoreError(f"{name} is not a directory; {_fix(setting)}") from error
    except OSError as error:
        raise StoreError(f"{name} cannot be created ({_reason(error)}); {_fix(setting)}") from error
    if not os.access(path, os.W_OK | os.X_OK):
        raise StoreError(f"{name} is not writable by this user; {_fix(setting)}")
    _tighten(path, 0o700)
    return path


def private_file(path: Path) -> None:
    """Tighten an existing file to 0600 (a store created before Flywheel made files private)."""
    _tighten(path, 0o600)


def _tighten(path: Path, wanted: int) -> None:
    """Drop group and other permissions from ``path``; warn when they cannot be dropped."""
    current = stat.S_IMODE(path.stat().st_mode)
    if not current & 0o077:
        return
    if path.stat().st_uid != os.geteuid():
        log.warning(
            "%s is readable by other users (mode %04o) and owned by another user; "
            "make it private: chmod %o %s",
            path,
            current,
            wanted,
            path,
        )
        return
    try:
        path.chmod(wanted)
    except OSError as error:
        log.warning("%s is readable by other users (mode %04o): %s", path, current, error)
        return
    log.warning("%s was readable by other users (mode %04o); it is now %04o", path, current, wanted)


def _reason(error: OSError) -> str:
    if error.errno == errno.ENOENT:  # e.g. under /proc, or a parent that vanished
        return "this location does not allow new directories"
    return error.strerror or str(error)


def _fix(setting: str | None) -> str:
    where = setting or "it"
    return f"point {where} at a directory this user can create and write"
