"""The daemon's end of the lifeline: starts the watchdog (`bridge.process.watchdog`) and
keeps it informed of the agents' process groups.

Nothing the daemon does at exit runs when it is SIGKILLed, so the cleanup for that case
lives in another process: the watchdog holds the read end of a pipe whose only write end
is ours (the fd is close-on-exec, so no agent inherits it). Our death, however it comes,
closes it; the watchdog sees EOF and kills what we leave. Starting it costs one
fork/exec (~1-2 ms here; the interpreter's own ~10 ms start-up runs in parallel).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from pathlib import Path

from bridge.process import tree

log = logging.getLogger(__name__)

WATCHDOG = str(Path(__file__).with_name("watchdog.py"))


class Lifeline:
    def __init__(self, instance: str = tree.INSTANCE_ID) -> None:
        self.instance = instance
        self._proc: subprocess.Popen[bytes] | None = None
        self._fd: int | None = None
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Spawn the watchdog and tell it every live agent group. Synchronous and cheap."""
        read_end, write_end = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", WATCHDOG, self.instance],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                # Unmarked: the daemon's own final sweep must not kill it.
                env={k: v for k, v in os.environ.items() if k != tree.MARKER_ENV},
                # Inherited: its one line, if the daemon died with agents, lands in our log.
                stderr=None,
                # Its own session: a signal to our process group (Ctrl-C, an editor killing
                # our group) must not take the watchdog down with us.
                start_new_session=True,
            )
        except OSError:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._fd = write_end
        tree.add_listener(self._on_group)
        for pid in tree.live_pids():
            self._send(f"+{pid}")

    def _on_group(self, op: str, pgid: int) -> None:
        self._send(f"{op}{pgid}")

    def _send(self, line: str) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, line.encode() + b"\n")
        except OSError:
            # The watchdog died (killed by hand, OOM): start a new one, which learns every
            # live group on start.
            self._drop()
            self.restarts += 1
            log.warning("the lifeline watchdog is gone; starting a new one")
            self.start()

    def check(self) -> None:
        """Restart the watchdog if it died (called from the daemon's housekeeping)."""
        if self._proc is not None and self._proc.poll() is not None:
            self._drop()
            self.restarts += 1
            log.warning("the lifeline watchdog exited (%s); starting a new one", self._proc.returncode)
            self.start()

    def _drop(self) -> None:
        tree.remove_listener(self._on_group)
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def close(self, timeout: float = 2.0) -> None:
        """Clean exit: the agents are already stopped; the watchdog sweeps once more (finding
        nothing, normally) and exits. Waits for it so it is not left a zombie."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._fd, b"exit\n")
        self._drop()
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
