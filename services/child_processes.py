"""Child processes that end with the process that started them.

A control plane stopped with SIGKILL (``kill -9``, the OOM killer) cannot stop its children.
Left running, the bundled broker keeps its port, so the next ``flywheel up`` fails until the
operator finds and kills it, and a training worker trains for nobody. On Linux the kernel
can signal a child when its parent dies (``prctl(PR_SET_PDEATHSIG)``), set in the child
between fork and exec; elsewhere there is no such call and children are stopped only by a
clean shutdown.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def ends_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for ``subprocess.Popen`` (and asyncio's subprocesses) that has the
    kernel send ``sig`` to the child when this process dies; None where the kernel cannot.

    The call into libc is looked up here, before the fork, so the child only makes it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sig)
        if os.getppid() != parent:  # the parent died before the call: nobody will signal
            os.kill(os.getpid(), sig)

    return preexec
