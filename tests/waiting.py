"""Waiting in tests on the thing itself, never on a fixed sleep.

- A process's exit: `wait_exited` waits on each process's pidfd, which the kernel makes
  readable the moment the process exits (a zombie counts as exited: it runs nothing, and
  its reaping is its parent's business). No polling.
- A state nothing notifies (an fd count, a socket closed by another process): `wait_until`,
  the one re-checking loop of the suite, which fails naming what it waited for.

States the daemon does announce (notifications, responses, log lines) are awaited where
they arrive (`AcpClient.wait_for`, `wait_received`, the in-process session's events), not
here."""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Awaitable, Callable, Iterable

import anyio
import psutil

Check = Callable[[], bool] | Callable[[], Awaitable[bool]]
What = str | Callable[[], str]


def _describe(what: What) -> str:
    return what if isinstance(what, str) else what()


def _running(pid: int) -> str | None:
    """`pid` and its command line if it runs (not a zombie), else None."""
    with contextlib.suppress(psutil.Error):
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE:
            return f"{pid} {' '.join(proc.cmdline())[:200]}"
    return None


def running_tree(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of `pid` and its descendants that run now. A process may exit or
    turn zombie between the listing and the reading of its command line: it is left out."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.status() != psutil.STATUS_ZOMBIE:
                out.append((proc.pid, " ".join(proc.cmdline())))
    return out


async def wait_exited(pids: Iterable[int], within: float, what: str = "processes to exit") -> None:
    """Wait until none of `pids` runs (exited, zombies included); fail after `within` seconds
    with the survivors' command lines."""
    pids = list(pids)
    fds: list[int] = []
    try:
        for pid in pids:
            try:
                fds.append(os.pidfd_open(pid))
            except ProcessLookupError:
                continue  # already gone (and reaped)
        try:
            with anyio.fail_after(within):
                for fd in fds:
                    await anyio.wait_readable(fd)
        except TimeoutError:
            left = [r for r in map(_running, pids) if r is not None]
            raise AssertionError(f"waited {within} s for {what}; still running: {left}") from None
    finally:
        for fd in fds:
            os.close(fd)


async def wait_until(check: Check, within: float, what: What) -> None:
    """Re-check `check` (sync or async) until it holds; fail after `within` seconds saying
    `what` was awaited (a callable `what` is asked only then, e.g. for the current values).
    Only for states nothing notifies: prefer an event, a response or `wait_exited`."""
    delay = 0.005
    try:
        with anyio.fail_after(within):
            while True:
                ok = check()
                if inspect.isawaitable(ok):
                    ok = await ok
                if ok:
                    return
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.1)
    except TimeoutError:
        raise AssertionError(f"waited {within} s for {_describe(what)}") from None
