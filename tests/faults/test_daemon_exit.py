"""The daemon as a real process: however it ends (SIGKILL, stdin EOF, SIGTERM, SIGINT, its
parent dying) no agent and no descendant of one survives, including descendants that
left the agent's process group or double-forked out of its tree."""

from __future__ import annotations

import signal
from pathlib import Path

import anyio
import psutil
import pytest

from bridge.process.tree import MARKER_ENV
from tests.daemon_proc import DaemonProc, daemon_process
from tests.faults.support import alive, family_pids, fault_config, marked
from tests.waiting import wait_exited, wait_until

pytestmark = pytest.mark.anyio


def _args(tmp_path: Path, *extra: str) -> list[str]:
    return ["--config", str(fault_config(tmp_path)), "--state-dir", str(tmp_path / "state"), *extra]


async def _populate(d: DaemonProc, tmp_path: Path) -> tuple[str, set[int]]:
    """Two sessions: one whose agent left a process family behind, one mid-stream. Returns
    the daemon's instance marker and every pid of the tree (agents, descendants, watchdog)."""
    c = d.client
    await c.initialize()
    s1 = await c.new_session(str(tmp_path))
    await c.prompt(s1, "family")
    family = family_pids(c, s1)
    assert len(alive(family)) == 5
    s2 = await c.new_session(str(tmp_path))
    await c.request_raw("_bridge/session/info", {"sessionId": s2})  # both sessions are up
    await c.send_raw(
        b'{"jsonrpc":"2.0","id":"mid","method":"session/prompt","params":{"sessionId":"%s",'
        b'"prompt":[{"type":"text","text":"drip 100000 0.01"}]}}' % s2.encode()
    )
    await c.wait_for(lambda m: "drip 3" in str(m))
    daemon = psutil.Process(d.process.pid)
    tree = {p.pid for p in daemon.children(recursive=True)} | set(family)
    agents = [p for p in _running_children(daemon) if "fault_agent.py" in " ".join(p.cmdline())]
    assert len(agents) == 2
    instance = agents[0].environ()[MARKER_ENV]
    # The double-forked daemon was re-parented to the bridge (child subreaper), not to init.
    assert psutil.Process(family[-1]).ppid() == d.process.pid
    assert set(family) <= set(marked(instance)) | {family[3]}  # family[3] has an empty environment
    return instance, tree


def _running_children(proc: psutil.Process) -> list[psutil.Process]:
    # Zombies too are children: re-parented orphans not reaped yet.
    return [p for p in proc.children() if p.status() != psutil.STATUS_ZOMBIE]


def _watchdog(d: DaemonProc) -> psutil.Process:
    found = [
        p for p in _running_children(psutil.Process(d.process.pid)) if "watchdog.py" in " ".join(p.cmdline())
    ]
    assert len(found) == 1, found
    return found[0]


async def test_sigkill_of_the_daemon_leaves_nothing_within_5s(tmp_path: Path) -> None:
    async with daemon_process(_args(tmp_path)) as d:
        instance, tree = await _populate(d, tmp_path)
        watchdog = _watchdog(d)
        d.process.send_signal(signal.SIGKILL)
        with anyio.fail_after(5):
            await d.process.wait()
        started = anyio.current_time()
        await wait_exited(tree | {watchdog.pid}, 5, "the SIGKILLed daemon's agents and watchdog")
        assert anyio.current_time() - started < 5
        assert marked(instance) == []


@pytest.mark.parametrize("how", ["stdin-eof", "sigterm", "sigint"])
async def test_clean_exit_stops_every_agent_and_exits_0(tmp_path: Path, how: str) -> None:
    async with daemon_process(_args(tmp_path)) as d:
        instance, tree = await _populate(d, tmp_path)
        started = anyio.current_time()
        if how == "stdin-eof":
            assert d.process.stdin is not None
            await d.process.stdin.aclose()
        else:
            d.process.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGINT)
        with anyio.fail_after(20):
            await d.process.wait()
        elapsed = anyio.current_time() - started
        assert d.process.returncode == 0, d.stderr.decode()[-2000:]
        # The ladder: 2 s for stdin EOF, 2 s after SIGTERM, then SIGKILL.
        assert elapsed < 12, elapsed
        # Nothing left, and nothing needed the watchdog: the daemon cleaned up itself.
        assert alive(tree) == []
        assert marked(instance) == []
        assert b"watchdog" not in d.stderr


async def test_daemon_exits_when_its_parent_dies(tmp_path: Path) -> None:
    parent = await anyio.open_process(["sleep", "600"])
    async with parent:
        try:
            async with daemon_process(_args(tmp_path, "--parent-pid", str(parent.pid))) as d:
                instance, tree = await _populate(d, tmp_path)
                parent.kill()
                await parent.wait()
                with anyio.fail_after(20):
                    await d.process.wait()
                assert d.process.returncode == 0, d.stderr.decode()[-2000:]
                assert alive(tree) == [] and marked(instance) == []
        finally:
            if parent.returncode is None:
                parent.kill()


async def test_parent_pid_that_does_not_exist_means_exit(tmp_path: Path) -> None:
    gone = await anyio.open_process(["true"])
    await gone.wait()
    async with daemon_process(_args(tmp_path, "--parent-pid", str(gone.pid))) as d:
        with anyio.fail_after(20):
            await d.process.wait()
        assert d.process.returncode == 0


async def test_closing_a_session_kills_escaped_descendants_and_reaps_them(tmp_path: Path) -> None:
    async with daemon_process(_args(tmp_path)) as d:
        c = d.client
        await c.initialize()
        sid = await c.new_session(str(tmp_path))
        await c.prompt(sid, "family")
        family = family_pids(c, sid)
        await c.request("session/close", {"sessionId": sid})
        await wait_exited(family, 15, "the closed session's agent and its escaped descendants")
        me = psutil.Process(d.process.pid)

        def no_zombie_children() -> bool:
            return not [p for p in me.children() if p.pid in family and p.status() == psutil.STATUS_ZOMBIE]

        # Re-parented orphans are reaped by the daemon (stop ladder, then housekeeping).
        await wait_until(no_zombie_children, 15, "the daemon to reap its re-parented orphans")
