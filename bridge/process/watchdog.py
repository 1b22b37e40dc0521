"""The lifeline watchdog: a tiny process that outlives the daemon to clean up after it.

Runs as `python -I -S watchdog.py INSTANCE` (no site-packages, standard library only, so it
starts in ~10 ms and imports nothing of the bridge). Its stdin is the read end of a pipe
whose only write end the daemon holds; the daemon writes `+PGID` / `-PGID` lines as agents
start and stop. When the pipe reaches EOF the daemon is gone (however it died, SIGKILL
included), and the watchdog kills every registered process group and every process whose
environment carries `AGENT_BRIDGE_INSTANCE=INSTANCE` (descendants that left their group
with `setsid`), then exits. A clean daemon writes `exit` first and has already stopped
everything, so the sweep then finds nothing and stays silent.

`scan()` is also what the daemon's own sweeps use (`bridge.process.tree`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

MARKER_ENV = "AGENT_BRIDGE_INSTANCE"
MAX_PASSES = 20


def scan(entry: bytes, *, exclude: int | None = None) -> list[int]:
    """Pids whose environment holds exactly `entry` (`b"KEY=VALUE"`), read from /proc.
    Processes of other users and ones that vanish mid-read are skipped."""
    me = os.getpid() if exclude is None else exclude
    found: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                data = f.read()
        except OSError:
            continue
        if entry in data.split(b"\0"):
            found.append(int(name))
    return found


def kill_all(entry: bytes, groups: set[int] | frozenset[int] = frozenset()) -> list[int]:
    """SIGKILL the groups, then every marked process, pass after pass until a pass finds
    none (a process forking during a pass is caught by the next). Returns the pids killed."""
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    killed: list[int] = []
    for _ in range(MAX_PASSES):
        pids = [pid for pid in scan(entry) if pid not in killed]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        killed += pids
    return killed


def main(argv: list[str]) -> int:
    instance = argv[1]
    # A terminal's Ctrl-C or hangup is for the daemon; we only ever act on the pipe's EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    daemon = os.getppid()
    groups: set[int] = set()
    clean = False
    buf = b""
    while True:
        try:
            data = os.read(0, 65536)
        except OSError:
            break
        if not data:
            break
        buf += data
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line == b"exit":
                clean = True
            elif line[:1] in (b"+", b"-") and line[1:].isdigit():
                (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))
    killed = len(kill_all(f"{MARKER_ENV}={instance}".encode(), groups))
    if killed or (groups and not clean):
        sys.stderr.write(
            f"agent-bridge watchdog: daemon {daemon} is gone; killed {killed} leftover agent processes"
            f" and {len(groups)} process groups\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
