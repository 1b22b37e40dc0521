"""Process-tree bookkeeping shared by every agent process: the live agent pids, killing a
set of pids, and the env markers that let a sweep find every descendant, even ones that
left the agent's process group (`setsid`, double-forking daemons).

Two markers: `AGENT_BRIDGE_INSTANCE` (this daemon) on every agent and everything it
starts, and `AGENT_BRIDGE_AGENT` (one agent process) so stopping one agent sweeps only
its own escaped descendants.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from bridge.lazy import lazy_module
from bridge.process.watchdog import MARKER_ENV, kill_all, scan

if TYPE_CHECKING:
    import psutil
else:
    # Imported at its first use: not on the path to the first `initialize` answer (bridge/lazy.py).
    psutil = lazy_module("psutil")

__all__ = ["AGENT_ENV", "INSTANCE_ID", "MARKER_ENV"]

# Every agent (and everything it starts, which inherits the environment) carries this
# marker, so a sweep can find descendants that escaped the process group.
INSTANCE_ID = uuid.uuid4().hex
AGENT_ENV = "AGENT_BRIDGE_AGENT"
_HAVE_PROC = sys.platform.startswith("linux") and os.path.isdir("/proc")

_live: set[int] = set()
# Told of every agent process group that starts (+) and ends (-): the lifeline watchdog.
_listeners: list[Callable[[str, int], None]] = []


def register(pid: int) -> None:
    _live.add(pid)
    for listener in list(_listeners):
        listener("+", pid)


def unregister(pid: int) -> None:
    _live.discard(pid)
    for listener in list(_listeners):
        listener("-", pid)


def live_pids() -> frozenset[int]:
    return frozenset(_live)


def add_listener(listener: Callable[[str, int], None]) -> None:
    _listeners.append(listener)


def remove_listener(listener: Callable[[str, int], None]) -> None:
    with contextlib.suppress(ValueError):
        _listeners.remove(listener)


def kill_pids(pids: Iterable[int], sig: signal.Signals = signal.SIGKILL) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def marked_pids(key: str, value: str) -> list[int]:
    """Pids (other than ours) whose environment has `key=value`."""
    if _HAVE_PROC:
        return scan(f"{key}={value}".encode())
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        with contextlib.suppress(psutil.Error, OSError):
            if proc.environ().get(key) == value:
                found.append(proc.pid)
    return found


def marked_processes(instance: str = INSTANCE_ID) -> list[psutil.Process]:
    """Every process on the machine that carries our instance marker (except ourselves)."""
    procs = []
    for pid in marked_pids(MARKER_ENV, instance):
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    return procs


def sweep(instance: str = INSTANCE_ID, key: str = MARKER_ENV) -> list[int]:
    """SIGKILL every process marked `key=instance`, pass after pass until none is left
    (a process forking during a pass is caught by the next); returns the pids killed."""
    if _HAVE_PROC:
        return kill_all(f"{key}={instance}".encode())
    killed: list[int] = []
    for _ in range(20):
        pids = [pid for pid in marked_pids(key, instance) if pid not in killed]
        if not pids:
            break
        kill_pids(pids)
        killed += pids
    return killed


def reap(pids: Iterable[int]) -> int:
    """Collect the exit status of those `pids` that are our zombie children: descendants of
    an agent that were re-parented to us (child subreaper) after their parent died. Never
    pass the pid of a process someone else waits for (asyncio waits for the agents)."""
    reaped = 0
    for pid in pids:
        with contextlib.suppress(ChildProcessError, OSError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            reaped += done == pid
    return reaped
