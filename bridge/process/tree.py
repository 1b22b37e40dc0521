"""Process-tree bookkeeping shared by every agent process: the live agent pids, killing a
set of pids, and the env marker that lets a sweep find every descendant, even ones that
left the agent's process group (`setsid`)."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterable

import psutil

# Every agent (and everything it starts, which inherits the environment) carries this
# marker, so a sweep can find descendants that escaped the process group.
MARKER_ENV = "AGENT_BRIDGE_INSTANCE"
INSTANCE_ID = uuid.uuid4().hex

_live: set[int] = set()


def register(pid: int) -> None:
    _live.add(pid)


def unregister(pid: int) -> None:
    _live.discard(pid)


def live_pids() -> frozenset[int]:
    return frozenset(_live)


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def marked_processes(instance: str = INSTANCE_ID) -> list[psutil.Process]:
    """Every process on the machine that carries our instance marker (except ourselves)."""
    found: list[psutil.Process] = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if proc.environ().get(MARKER_ENV) == instance:
                found.append(proc)
    return found


def sweep(instance: str = INSTANCE_ID) -> int:
    """SIGKILL every marked process; returns how many were found."""
    procs = marked_processes(instance)
    kill_pids(p.pid for p in procs)
    return len(procs)
