"""The control plane and the CLI start without loading torch (2.4 s of a 4.7 s start here):
they store, schedule and route, and training and serving run in their own processes."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["services.control_plane.main", "services.cli.main"])
def test_module_imports_without_torch(module: str) -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", f"import sys, {module}; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "False", f"importing {module} loads torch"
