"""The stop ladder, the one way a child of ours is stopped: close its stdin (a well-behaved
child exits at EOF) → wait → SIGTERM → wait → SIGKILL → wait. Each rung only if the child is
still running. The daemon stops agents with it (`AgentProcess.stop`, which signals the
agent's whole group and escaped descendants), the client library its spawned daemon."""

from __future__ import annotations

import contextlib
import math
import signal
from collections.abc import Callable

import anyio
from anyio.abc import Process


def signal_process(proc: Process) -> Callable[[signal.Signals], None]:
    """Send a signal to the process alone (gone already: nothing to do)."""

    def send(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)

    return send


async def stop_ladder(
    proc: Process,
    *,
    grace: float,
    term_grace: float,
    kill_grace: float | None = None,
    send: Callable[[signal.Signals], None] | None = None,
) -> None:
    """`grace` after EOF, `term_grace` after SIGTERM, `kill_grace` after SIGKILL (None: until
    it is reaped). `send` delivers SIGTERM and SIGKILL (default: to the process alone)."""
    send = send or signal_process(proc)
    if proc.stdin is not None:
        with contextlib.suppress(Exception):
            await proc.stdin.aclose()
    for sig, wait in ((None, grace), (signal.SIGTERM, term_grace), (signal.SIGKILL, kill_grace)):
        if proc.returncode is not None:
            return
        if sig is not None:
            send(sig)
        with anyio.move_on_after(math.inf if wait is None else wait):
            await proc.wait()
