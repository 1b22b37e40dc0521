"""Daemon-level process supervision, for the process entry points (`serve_stdio`, the
WebSocket server) rather than for one `Bridge`:

- child subreaper (Linux `PR_SET_CHILD_SUBREAPER`): agents' orphaned descendants are
  re-parented to us instead of escaping to init, so they can be found, killed and reaped;
- the lifeline watchdog (`bridge.process.lifeline`), which cleans up if we are SIGKILLed;
- a housekeeping task: reaps re-parented orphans that exited, restarts a dead watchdog;
- a final sweep at exit of anything still carrying our instance marker;
- `watch_parent`: exit when the editor that started us dies (LSP `processId` style);
- `arm_exit_deadline`: a bound on the whole shutdown, whatever hangs.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio

from bridge.lazy import lazy_module
from bridge.process import tree
from bridge.process.lifeline import Lifeline

if TYPE_CHECKING:
    import psutil
else:
    # Imported at its first use: not on the path to the first `initialize` answer (bridge/lazy.py).
    psutil = lazy_module("psutil")

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36
PR_SET_PDEATHSIG = 1
HOUSEKEEPING_INTERVAL = 5.0
ZOMBIE_RECHECK = 1.0
PARENT_POLL_INTERVAL = 1.0
# The stop ladder takes at most 4 grace periods (2 s each), plus the store's last flush.
EXIT_DEADLINE = 12.0


def _prctl(option: int, arg: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    # The running interpreter already links libc: no `find_library` (it runs ldconfig).
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.prctl(option, arg, 0, 0, 0)) == 0


def become_subreaper() -> bool:
    ok = _prctl(PR_SET_CHILD_SUBREAPER, 1)
    if not ok:
        log.info("could not become a child subreaper; orphan sweeps rely on the env marker only")
    return ok


class Supervisor:
    """What `supervised()` runs; exposed for tests and for the health of the lifeline."""

    def __init__(self, *, lifeline: bool = True) -> None:
        self.subreaper = False
        self.lifeline = Lifeline() if lifeline else None
        self._zombies: set[int] = set()

    def reap_orphans(self) -> int:
        """Collect re-parented orphans that have exited. A child asyncio spawned is reaped by
        asyncio's own watcher the moment it exits, so a zombie child seen on two passes in a
        row is one nobody waits for: an agent's descendant that was re-parented to us."""
        me = os.getpid()
        mine = set(tree.live_pids())
        if self.lifeline is not None and self.lifeline.pid is not None:
            mine.add(self.lifeline.pid)
        zombies = set()
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(me).children():
                with contextlib.suppress(psutil.Error):
                    if child.pid not in mine and child.status() == psutil.STATUS_ZOMBIE:
                        zombies.add(child.pid)
        ripe, self._zombies = zombies & self._zombies, zombies - self._zombies
        return tree.reap(ripe)

    async def housekeeping(self, interval: float = HOUSEKEEPING_INTERVAL) -> None:
        while True:
            # Zombies seen once are re-checked a second later rather than a period later.
            await anyio.sleep(ZOMBIE_RECHECK if self._zombies else interval)
            self.reap_orphans()
            if self.lifeline is not None:
                self.lifeline.check()


@contextlib.asynccontextmanager
async def supervised(*, lifeline: bool = True) -> AsyncIterator[Supervisor]:
    """Run a daemon under supervision. On exit (however the body ends), sweep whatever
    still carries our marker and let the watchdog go."""
    sup = Supervisor(lifeline=lifeline)
    sup.subreaper = become_subreaper()
    # Everything the daemon starts inherits the marker, not only agents: the login-shell
    # probe, `_bridge/session/shell` commands, version probes. (/proc/self/environ keeps the
    # environment we were started with, so the daemon itself never looks marked.)
    previous = os.environ.get(tree.MARKER_ENV)
    os.environ[tree.MARKER_ENV] = tree.INSTANCE_ID
    if sup.lifeline is not None:
        try:
            sup.lifeline.start()
        except OSError as exc:
            log.warning(
                "could not start the lifeline watchdog (%s); a SIGKILL of the daemon may leave agents", exc
            )
            sup.lifeline = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.housekeeping)
            try:
                yield sup
            finally:
                tg.cancel_scope.cancel()
    finally:
        killed = tree.sweep()
        if killed:
            log.warning("final sweep killed %d leftover agent processes", len(killed))
        if sup.lifeline is not None:
            sup.lifeline.close()
        if previous is None:
            os.environ.pop(tree.MARKER_ENV, None)
        else:
            os.environ[tree.MARKER_ENV] = previous


async def watch_parent(pid: int, on_exit: Callable[[], None]) -> None:
    """Call `on_exit` once process `pid` (the editor that started us) has exited. Uses a
    pidfd where the kernel has them (no polling), else checks every second. A pid that does
    not exist at all counts as exited, as LSP's `processId` asks."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        log.warning("parent process %d does not exist; shutting down", pid)
        on_exit()
        return
    except (AttributeError, OSError):
        fd = None
    if fd is not None:
        try:
            await anyio.wait_readable(fd)
        finally:
            os.close(fd)
    else:
        while True:
            if not _pid_alive(pid):
                break
            await anyio.sleep(PARENT_POLL_INTERVAL)
    log.info("parent process %d exited; shutting down", pid)
    on_exit()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    with contextlib.suppress(psutil.Error):
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    return False


_deadline_lock = threading.Lock()
_deadline: threading.Timer | None = None


def arm_exit_deadline(seconds: float = EXIT_DEADLINE) -> None:
    """Shutdown has begun: if the process is still here after `seconds` (an adapter's stop
    hung, a store flush blocked), kill every agent and exit. Idempotent."""
    global _deadline
    with _deadline_lock:
        if _deadline is not None:
            return
        _deadline = threading.Timer(seconds, _force_exit, (seconds,))
        _deadline.daemon = True
        _deadline.start()


def disarm_exit_deadline() -> None:
    global _deadline
    with _deadline_lock:
        if _deadline is not None:
            _deadline.cancel()
            _deadline = None


def _force_exit(seconds: float) -> None:
    log.error("shutdown did not finish within %g s; killing every agent and exiting", seconds)
    with contextlib.suppress(Exception):
        tree.sweep()
    for pid in tree.live_pids():
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    logging.shutdown()
    os._exit(1)
