"""The stop ladder on real children: each rung is taken only when the one before did not
stop the child, and the rung that stopped it shows in its exit status."""

from __future__ import annotations

import signal
import subprocess
import sys

import anyio
import pytest

from bridge.process.ladder import stop_ladder

pytestmark = pytest.mark.anyio

# Each child says "ready" once its handlers are in place, then waits for EOF on stdin.
EXITS_AT_EOF = "import sys; print('ready', flush=True); sys.stdin.read()"
IGNORES_EOF = "import sys, time; print('ready', flush=True); sys.stdin.read(); time.sleep(60)"
IGNORES_TERM = (
    "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); sys.stdin.read(); time.sleep(60)"
)


@pytest.mark.parametrize(
    ("code", "returncode"),
    [(EXITS_AT_EOF, 0), (IGNORES_EOF, -signal.SIGTERM), (IGNORES_TERM, -signal.SIGKILL)],
    ids=["eof", "sigterm", "sigkill"],
)
async def test_each_rung_only_when_needed(code: str, returncode: int) -> None:
    proc = await anyio.open_process(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert proc.stdout is not None
    assert (await proc.stdout.receive()).startswith(b"ready")
    sent: list[signal.Signals] = []

    def send(sig: signal.Signals) -> None:
        sent.append(sig)
        proc.send_signal(sig)

    with anyio.fail_after(10):
        await stop_ladder(proc, grace=0.5, term_grace=0.5, send=send)
    assert proc.returncode == returncode
    expected = {0: [], -signal.SIGTERM: [signal.SIGTERM], -signal.SIGKILL: [signal.SIGTERM, signal.SIGKILL]}
    assert sent == expected[returncode]
    await proc.aclose()
