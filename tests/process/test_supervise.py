"""Daemon-level supervision pieces: parent watch, orphan reaping as a child subreaper, the
shutdown deadline. The ones that change process-wide state run in a child interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import anyio
import pytest

from bridge.process import supervise
from tests.conftest import ROOT, subprocess_env
from tests.waiting import wait_exited

pytestmark = pytest.mark.anyio


async def test_watch_parent_fires_when_the_process_exits() -> None:
    parent = await anyio.open_process(["sleep", "600"])
    fired = anyio.Event()
    async with parent, anyio.create_task_group() as tg:
        tg.start_soon(supervise.watch_parent, parent.pid, fired.set)
        parent.kill()
        with anyio.fail_after(10):
            await fired.wait()


async def test_watch_parent_of_a_missing_pid_fires_at_once() -> None:
    gone = await anyio.open_process(["true"])
    await gone.wait()
    fired = anyio.Event()
    with anyio.fail_after(5):
        await supervise.watch_parent(gone.pid, fired.set)
    assert fired.is_set()


async def _run(code: str, within: float = 30) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(within):
        return await anyio.run_process(
            [sys.executable, "-c", textwrap.dedent(code)], env=subprocess_env(), cwd=str(ROOT), check=False
        )


async def test_subreaper_reaps_re_parented_orphans() -> None:
    done = await _run(
        """
        import os, subprocess, sys, time
        import anyio, psutil
        from bridge.process import supervise

        async def main():
            sup = supervise.Supervisor(lifeline=False)
            assert supervise.become_subreaper()
            # A double fork: the grandchild is orphaned, re-parented to us, and exits when we
            # close its stdin (after its parent is gone, so it is ours to reap).
            p = subprocess.Popen([sys.executable, "-c",
                "import os, sys\\nif os.fork() == 0:\\n    print(os.getpid(), flush=True)\\n"
                "    sys.stdin.read()\\n    os._exit(0)\\n"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            grandchild = int(p.stdout.readline())
            p.wait()
            assert psutil.Process(grandchild).ppid() == os.getpid()
            exited = os.pidfd_open(grandchild)
            p.stdin.close()
            with anyio.fail_after(10):
                await anyio.wait_readable(exited)  # readable once it has exited
            def zombies():
                return [c.pid for c in psutil.Process().children() if c.status() == psutil.STATUS_ZOMBIE]
            orphans = zombies()
            assert grandchild in orphans
            assert sup.reap_orphans() == 0  # first sighting: maybe asyncio's, leave it
            assert sup.reap_orphans() == len(orphans)
            assert zombies() == []

        anyio.run(main)
        """
    )
    assert done.returncode == 0, done.stderr.decode()


async def test_exit_deadline_kills_agents_and_exits_when_shutdown_hangs() -> None:
    done = await _run(
        """
        import os, subprocess, sys, time
        from bridge.process import supervise, tree
        child = subprocess.Popen(["sleep", "600"], env={**os.environ, tree.MARKER_ENV: tree.INSTANCE_ID})
        print(child.pid, flush=True)
        supervise.arm_exit_deadline(0.5)
        time.sleep(30)  # a shutdown that hangs
        """
    )
    assert done.returncode == 1
    assert b"did not finish within 0.5 s" in done.stderr
    await wait_exited([int(done.stdout)], 5, "the agent the exit deadline killed")
