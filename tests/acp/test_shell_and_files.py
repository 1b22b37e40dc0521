"""`_bridge/session/shell` (off by default; when on, bounded and leaving nothing behind) and
`_bridge/session/read_file` (confined to the session's directories), over the in-process
daemon with the fake agent."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import psutil
import pytest

from tests.acp_client import RpcFailure
from tests.conftest import InProcess, fake_agent_config, in_process
from tests.store.test_durability import all_events

pytestmark = pytest.mark.anyio


@pytest.fixture
async def shell_on(tmp_path: Path) -> AsyncIterator[InProcess]:
    async with in_process(tmp_path, allow_shell=True) as d:
        await d.client.initialize()
        yield d


async def test_shell_is_off_unless_the_config_enables_it(daemon: InProcess) -> None:
    c = daemon.client
    sid = await c.new_session(daemon.cwd)
    with pytest.raises(RpcFailure) as err:
        await c.request("_bridge/session/shell", {"sessionId": sid, "command": "touch ran"})
    assert err.value.code == -32601
    assert "allow_shell = true" in str(err.value.message) and "[agents.fake]" in str(err.value.message)
    assert not (Path(daemon.cwd) / "ran").exists()


async def test_shell_enabled_for_one_agent_only(tmp_path: Path) -> None:
    config = fake_agent_config(tmp_path)
    config.write_text(config.read_text() + "allow_shell = true\n")  # inside [agents.fake]
    async with in_process(tmp_path, config) as d:
        await d.client.initialize()
        sid = await d.client.new_session(d.cwd)
        out = await d.client.request("_bridge/session/shell", {"sessionId": sid, "command": "echo hi"})
        assert out["stdout"] == "hi\n" and out["truncated"] is False
        assert d.bridge.server.policy.shell_allowed("claude") is False


async def test_shell_runs_and_reports(shell_on: InProcess) -> None:
    c = shell_on.client
    sid = await c.new_session(shell_on.cwd)
    out = await c.request("_bridge/session/shell", {"sessionId": sid, "command": "pwd; echo oops >&2; exit 3"})
    assert out == {"stdout": shell_on.cwd + "\n", "stderr": "oops\n", "exitCode": 3, "truncated": False}


def _group_members(pgid: int) -> list[int]:
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return found


def _running(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _pids_after(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()]


async def test_shell_timeout_kills_the_whole_group_and_escapees(shell_on: InProcess) -> None:
    c = shell_on.client
    sid = await c.new_session(shell_on.cwd)
    pids = Path(shell_on.cwd) / "pids"
    # The shell, a backgrounded grandchild (same group), one that left the group (setsid),
    # and a sleep in the foreground that outlives the timeout.
    command = (
        f"echo $$ > {pids}; sleep 300 & echo $! >> {pids}; "
        f"setsid sleep 301 & echo $! >> {pids}; sh -c 'sleep 302' & echo $! >> {pids}; sleep 303"
    )
    with pytest.raises(RpcFailure) as err:
        await c.request("_bridge/session/shell", {"sessionId": sid, "command": command, "timeoutMs": 3000})
    assert err.value.code == -32013 and "timed out" in str(err.value.message)
    started = await _pids_after(pids)
    assert len(started) == 4
    procs = []
    for pid in started:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    # SIGKILL was sent before the answer; wait for the kernel to finish them.
    _, alive = psutil.wait_procs(procs, timeout=10)
    assert [p for p in alive if _running(p)] == []
    assert _group_members(started[0]) == []


async def test_shell_that_exits_leaves_no_background_child(shell_on: InProcess) -> None:
    c = shell_on.client
    sid = await c.new_session(shell_on.cwd)
    out = await c.request(
        "_bridge/session/shell",
        {"sessionId": sid, "command": "sleep 300 & echo $!; echo done", "timeoutMs": 60_000},
    )
    # Answered when the shell exited, not when the background child (holding the pipes) would.
    lines = out["stdout"].split()
    assert lines[1] == "done" and out["exitCode"] == 0
    try:
        child = psutil.Process(int(lines[0]))
    except psutil.NoSuchProcess:
        return
    _, alive = psutil.wait_procs([child], timeout=10)
    assert [p for p in alive if _running(p)] == []


async def test_shell_output_and_its_log_record_are_bounded(shell_on: InProcess) -> None:
    c = shell_on.client
    sid = await c.new_session(shell_on.cwd)
    out = await c.request(
        "_bridge/session/shell",
        {"sessionId": sid, "command": "head -c 3000000 /dev/zero | tr '\\0' a; echo end; echo e >&2"},
    )
    assert out["truncated"] is True and out["stdoutBytes"] == 3_000_004 and out["stderrBytes"] == 2
    assert len(out["stdout"]) == 1024 * 1024 and out["stdout"].endswith("aaaend\n")
    events = await all_events(c, sid)
    shell_rows = [e for e in events if "exitCode" in str(e["message"])[:200] or "shell" in str(e["message"])[:200]]
    assert shell_rows and all(len(str(e["message"])) < 10_000 for e in shell_rows)
    logged = next(e["message"]["result"] for e in events if "stdoutBytes" in e["message"].get("result", {}))
    assert logged["stdoutBytes"] == 3_000_004 and "not logged" in logged["stdout"]


# -- read_file -----------------------------------------------------------------------------------
async def _read(d: InProcess, sid: str, path: str, **extra: object) -> dict[str, object]:
    result = await d.client.request("_bridge/session/read_file", {"sessionId": sid, "path": path, **extra})
    assert isinstance(result, dict)
    return result


async def _refused(d: InProcess, sid: str, path: str) -> RpcFailure:
    with pytest.raises(RpcFailure) as err:
        await _read(d, sid, path)
    assert err.value.code == -32602 and path in str(err.value.message)
    assert err.value.data["path"] == path
    return err.value


async def test_read_file_text_bytes_offset_and_limit(daemon: InProcess) -> None:
    work = Path(daemon.cwd)
    (work / "a.txt").write_text("héllo\n")
    (work / "sub").mkdir()
    (work / "sub" / "b.bin").write_bytes(bytes(range(256)))
    sid = await daemon.client.new_session(daemon.cwd)
    assert await _read(daemon, sid, "a.txt") == {"content": "héllo\n", "encoding": "text", "size": 7, "truncated": False}
    assert (await _read(daemon, sid, str(work / "a.txt")))["content"] == "héllo\n"
    assert (await _read(daemon, sid, "sub/../a.txt"))["content"] == "héllo\n"
    part = await _read(daemon, sid, "sub/b.bin", offset=16, limit=4, encoding="base64")
    assert part == {"content": "EBESEw==", "encoding": "base64", "size": 256, "truncated": True}
    tail = await _read(daemon, sid, "sub/b.bin", offset=250, encoding="base64")
    assert tail["truncated"] is False and tail["content"] == "+vv8/f7/"
    with pytest.raises(RpcFailure) as err:
        await _read(daemon, sid, "a.txt", limit=10**9)
    assert err.value.code == -32602


async def test_read_file_refuses_paths_outside_the_session(daemon: InProcess, tmp_path: Path) -> None:
    work = Path(daemon.cwd)
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours\n")
    evil = tmp_path / (work.name + "-evil")  # a prefix of the cwd's name, not inside it
    evil.mkdir()
    (evil / "x.txt").write_text("x")
    (work / "link").symlink_to(secret)
    (work / "dirlink").symlink_to(tmp_path)
    (work / "inner").symlink_to(work / "ok.txt")
    (work / "ok.txt").write_text("fine")
    os.mkfifo(work / "fifo")
    sid = await daemon.client.new_session(daemon.cwd)
    for path in ("../secret.txt", str(secret), "link", "dirlink/secret.txt", str(evil / "x.txt"), "/etc/passwd"):
        err = await _refused(daemon, sid, path)
        assert err.data["reason"] == "outside", path
    assert (await _read(daemon, sid, "inner"))["content"] == "fine"
    assert (await _refused(daemon, sid, "missing.txt")).data["reason"] == "not_found"
    assert (await _refused(daemon, sid, ".")).data["reason"] == "directory"
    assert (await _refused(daemon, sid, "fifo")).data["reason"] == "not_regular"


async def test_read_file_allows_additional_directories(daemon: InProcess, tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "notes.md").write_text("# notes\n")
    sid = await daemon.client.new_session(daemon.cwd, additionalDirectories=[str(extra)])
    assert (await _read(daemon, sid, str(extra / "notes.md")))["content"] == "# notes\n"
    assert (await _read(daemon, sid, "../extra/notes.md"))["content"] == "# notes\n"
    other = await daemon.client.new_session(daemon.cwd)
    await _refused(daemon, other, str(extra / "notes.md"))
