"""The process layer on its own: spawn, env markers, stderr tail, exit records and the
stop ladder against agents that ignore EOF and SIGTERM, are SIGSTOPped, or leave
descendants behind (same group, `setsid`, double-forked)."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import anyio
import psutil
import pytest

from bridge.process import tree
from bridge.process.agent_process import AgentProcess, open_agent_process, recording_exits
from tests.faults.support import alive
from tests.waiting import wait_exited

pytestmark = pytest.mark.anyio

ENV = dict(os.environ)


def script(tmp_path: Path, body: str) -> list[str]:
    path = tmp_path / "agent.py"
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


async def first_line(proc: AgentProcess) -> bytes:
    async for batch in proc.batches():
        line = batch[0]
        assert isinstance(line, bytes)
        return line
    raise AssertionError("no output")


STUBBORN = """
    import signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    sys.stdin.close()
    while True:
        time.sleep(1)
"""


async def test_stop_ladder_kills_an_agent_that_ignores_eof_and_sigterm(tmp_path: Path) -> None:
    grace = 0.3
    async with open_agent_process("stubborn", script(tmp_path, STUBBORN), env=ENV, stop_grace=grace) as proc:
        assert await first_line(proc) == b"ready"
        pid = proc.pid
        started = anyio.current_time()
    took = anyio.current_time() - started
    assert proc.returncode == -signal.SIGKILL
    assert alive([pid]) == []
    assert took < 6 * grace + 2, took  # stdin grace + SIGTERM grace + SIGKILL; bounded


async def test_a_stopped_agent_gets_to_handle_sigterm(tmp_path: Path) -> None:
    done = tmp_path / "cleaned-up"
    body = f"""
        import signal, sys, time
        def bye(*_):
            open({str(done)!r}, "w").write("bye")
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        print("ready", flush=True)
        sys.stdin.close()
        while True:
            time.sleep(1)
    """
    async with open_agent_process("frozen", script(tmp_path, body), env=ENV, stop_grace=0.5) as proc:
        assert await first_line(proc) == b"ready"
        os.kill(proc.pid, signal.SIGSTOP)
    # SIGCONT follows SIGTERM, so the frozen agent ran its handler instead of being SIGKILLed.
    assert done.read_text() == "bye"
    assert proc.returncode == 0


FAMILY = """
    import os, subprocess, sys, time
    quiet = dict(stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pids = [subprocess.Popen(["sleep", "600"], **quiet).pid]
    # The escapee says when it has left our session (its line), so the group is settled first.
    s = subprocess.Popen([sys.executable, "-c", "import os, time; os.setsid(); print(flush=True); os.close(1); time.sleep(600)"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    s.stdout.readline()
    pids.append(s.pid)
    d = subprocess.Popen([sys.executable, "-c", "import os, sys, time\\n"
        "if os.fork(): os._exit(0)\\nos.setsid()\\nif os.fork(): os._exit(0)\\n"
        "print(os.getpid(), flush=True)\\nos.close(1)\\ntime.sleep(600)"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    pids.append(int(d.stdout.readline()))
    d.wait()
    print(" ".join(map(str, pids)), flush=True)
    for line in sys.stdin:
        pass
"""


async def test_stop_reaches_descendants_that_left_the_group(tmp_path: Path) -> None:
    async with open_agent_process("family", script(tmp_path, FAMILY), env=ENV, stop_grace=0.5) as proc:
        pids = [int(p) for p in (await first_line(proc)).split()]
        assert len(alive(pids)) == 3
        # Escapees: another session, and a daemon that is no longer our descendant at all.
        assert os.getpgid(pids[1]) != proc.pid
        assert pids[2] not in [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
    await wait_exited(pids, 10, "the family after its agent's stop")


async def test_stopping_one_agent_spares_another_agents_descendants(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with open_agent_process("b", script(tmp_path / "b", FAMILY), env=ENV, stop_grace=0.5) as other:
        theirs = [int(p) for p in (await first_line(other)).split()]
        async with open_agent_process("a", script(tmp_path / "a", FAMILY), env=ENV, stop_grace=0.5) as proc:
            mine = [int(p) for p in (await first_line(proc)).split()]
        await wait_exited(mine, 10, "agent a's descendants after its stop")
        assert alive(theirs) == theirs
    await wait_exited(theirs, 10, "agent b's descendants after its stop")


async def test_agents_and_their_children_carry_both_markers(tmp_path: Path) -> None:
    async with open_agent_process("family", script(tmp_path, FAMILY), env=ENV, stop_grace=0.5) as proc:
        pids = [int(p) for p in (await first_line(proc)).split()]
        for pid in [proc.pid, *pids]:
            env = psutil.Process(pid).environ()
            assert env[tree.MARKER_ENV] == tree.INSTANCE_ID
            assert env[tree.AGENT_ENV] == proc.agent_token
        assert sorted(tree.marked_pids(tree.AGENT_ENV, proc.agent_token)) == sorted([proc.pid, *pids])


async def test_stderr_flood_keeps_a_bounded_tail_and_never_blocks(tmp_path: Path) -> None:
    body = """
        import sys
        sys.stderr.write("x" * (10 << 20))
        sys.stderr.write("\\nlast words\\n")
        sys.stderr.flush()
        print("done", flush=True)
        sys.exit(4)
    """
    async with open_agent_process("loud", script(tmp_path, body), env=ENV) as proc:
        with anyio.fail_after(30):
            assert await first_line(proc) == b"done"
            assert await proc.wait(10) == 4
        tail = proc.stderr_tail()
        assert len(tail) <= 8192 and tail.endswith("last words\n")


async def test_exit_record_tells_an_agent_exit_from_a_bridge_stop(tmp_path: Path) -> None:
    body = """
        import sys
        sys.stderr.write("cannot go on\\n")
        sys.exit(5)
    """
    with recording_exits() as record:
        async with open_agent_process("quits", script(tmp_path, body), env=ENV) as proc:
            async for _ in proc.batches():
                pass
    assert record.ended and record.on_its_own
    assert record.returncode == 5 and "cannot go on" in record.stderr_tail

    with recording_exits() as record:
        async with open_agent_process(
            "stubborn", script(tmp_path, STUBBORN), env=ENV, stop_grace=0.2
        ) as proc:
            assert await first_line(proc) == b"ready"
    assert record.ended and not record.on_its_own
    assert record.returncode == -signal.SIGKILL


async def test_live_pids_track_running_agents(tmp_path: Path) -> None:
    async with open_agent_process("s", script(tmp_path, STUBBORN), env=ENV, stop_grace=0.2) as proc:
        assert proc.pid in tree.live_pids()
    assert proc.pid not in tree.live_pids()


DEAF = """
    import os, time
    os.close(0)  # its stdin is gone; it goes on running
    print("ready", flush=True)
    time.sleep(30)
"""


async def test_a_write_to_an_agent_that_closed_its_stdin_fails_at_once(tmp_path: Path) -> None:
    # asyncio's pipe transport swallows the EPIPE of a failed write (it only closes itself):
    # the frame would be lost silently, and its request wait for an agent that never got it.
    async with open_agent_process("deaf", script(tmp_path, DEAF), env=ENV, stop_grace=0.2) as proc:
        assert await first_line(proc) == b"ready"
        with pytest.raises(anyio.BrokenResourceError):
            await proc.send(b'{"jsonrpc":"2.0","id":1,"method":"x"}\n')
        with pytest.raises(anyio.BrokenResourceError):
            await proc.send(b"again\n")
