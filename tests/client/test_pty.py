"""`agent-bridge prompt` on a pseudo-terminal: the interactive permission question, colour,
and Ctrl-C cancelling the turn (the daemon runs in its own session, so the terminal's
SIGINT reaches only the client, which cancels gracefully)."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest

from tests.client.support import client_config
from tests.conftest import subprocess_env

DEADLINE = 90.0


def plain(screen: bytes) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", screen.decode(errors="replace"))


class Terminal:
    """The CLI as the only process on a pseudo-terminal (pty.fork: it gets a controlling tty)."""

    def __init__(self, tmp: Path, *args: str) -> None:
        argv = [
            sys.executable,
            "-m",
            "bridge",
            "--config",
            str(client_config(tmp)),
            "--state-dir",
            str(tmp / "state"),
            *args,
        ]
        env = subprocess_env(TERM="xterm-256color")
        env.pop("NO_COLOR", None)
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the CLI at once
            os.chdir(tmp)
            os.execve(sys.executable, argv, env)
        self.output = b""

    def read_until(self, needle: bytes) -> bytes:
        end = time.monotonic() + DEADLINE
        while needle not in self.output:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{needle!r} never appeared; output so far:\n{self.output.decode(errors='replace')}"
                )
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready and not self._read():
                raise AssertionError(
                    f"the CLI ended before {needle!r}:\n{self.output.decode(errors='replace')}"
                )
        return self.output

    def _read(self) -> bool:
        try:
            chunk = os.read(self.fd, 65536)
        except OSError:  # EIO: the other side closed
            return False
        self.output += chunk
        return bool(chunk)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self) -> int:
        """Read to the end of the output (the terminal closes when the CLI exits), then reap."""
        end = time.monotonic() + DEADLINE
        while True:
            left = end - time.monotonic()
            if left <= 0:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
                raise AssertionError(f"the CLI did not exit:\n{self.output.decode(errors='replace')}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready and not self._read():
                break
        os.close(self.fd)
        _, status = os.waitpid(self.pid, 0)
        return os.waitstatus_to_exitcode(status)


@pytest.mark.parametrize(
    ("answer", "outcome"), [(b"1\n", b"permission: allow"), (b"n\n", b"permission: reject")]
)
def test_interactive_permission_prompt(tmp_path: Path, answer: bytes, outcome: bytes) -> None:
    term = Terminal(tmp_path, "prompt", "permission")
    screen = term.read_until(b"choose 1-2")
    assert b"\x1b[" in screen  # colour on a terminal
    text = plain(screen)
    assert "Allow Write marker (edit)?" in text
    assert "1) Allow  allow_once" in text and "2) Reject  reject_once" in text
    term.write(answer)
    term.read_until(outcome)
    assert term.wait() == 0


def test_ctrl_c_cancels_the_turn(tmp_path: Path) -> None:
    term = Terminal(tmp_path, "prompt", "slow", "600", "0.05")
    term.read_until(b"slow 1 ")
    term.write(b"\x03")  # the terminal turns it into SIGINT for the foreground process group
    term.read_until(b"cancelling")
    code = term.wait()
    assert code == 130, term.output.decode(errors="replace")
    assert "[cancelled]" in plain(term.output)
    assert b"slow 599" not in term.output
