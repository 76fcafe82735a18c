"""A child started with ``ends_with_parent`` does not outlive a parent killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import psutil
import pytest

PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    from services.child_processes import ends_with_parent
    hook = ends_with_parent() if sys.argv[1] == "hooked" else None
    child = subprocess.Popen(["sleep", "60"], preexec_fn=hook, start_new_session=True)
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
@pytest.mark.parametrize(("mode", "outlives"), [("hooked", False), ("plain", True)])
def test_a_child_ends_with_its_parent_killed_with_sigkill(mode, outlives):
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, mode], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        _gone, alive = psutil.wait_procs([child], timeout=2 if outlives else 10)
        assert bool(alive) == outlives  # without the hook, the orphan lives on (the bug)
    finally:
        if child.is_running():
            child.kill()
