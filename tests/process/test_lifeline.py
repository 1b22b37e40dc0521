"""The lifeline watchdog, driven directly: when its pipe closes without `exit` (the daemon
died) it kills every registered group and every process carrying the instance marker; it
is restarted if it dies; a clean close leaves it silent."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import psutil
import pytest

from bridge.process import tree
from bridge.process.lifeline import Lifeline
from tests.faults.support import alive
from tests.waiting import wait_exited

pytestmark = pytest.mark.anyio


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        p.kill()
        p.wait()


def spawn(procs: list[subprocess.Popen[bytes]], instance: str | None, *, own_group: bool = False) -> int:
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    if instance is not None:
        env[tree.MARKER_ENV] = instance
    p = subprocess.Popen(
        ["sleep", "600"],
        env=env,
        start_new_session=own_group,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    procs.append(p)
    return p.pid


def unclean_death(line: Lifeline) -> None:
    """What the daemon's death does to the pipe: closed, no `exit` written."""
    line._drop()


async def test_daemon_death_kills_marked_processes_and_registered_groups(
    procs: list[subprocess.Popen[bytes]],
) -> None:
    instance = uuid.uuid4().hex
    line = Lifeline(instance)
    line.start()
    marked = [spawn(procs, instance), spawn(procs, instance, own_group=True)]
    unmarked_group = spawn(procs, None, own_group=True)  # e.g. an agent that cleared its env
    bystander = spawn(procs, uuid.uuid4().hex)  # another daemon's agent
    tree.register(unmarked_group)
    try:
        unclean_death(line)
        await wait_exited([*marked, unmarked_group], 5, "the marked processes and the registered group")
        watchdog = line._proc
        assert watchdog is not None
        await wait_exited([watchdog.pid], 5, "the watchdog, its work done")  # and it exits
        assert watchdog.wait(5) == 0
        assert alive([bystander]) == [bystander]
    finally:
        tree.unregister(unmarked_group)


async def test_watchdog_is_restarted_if_it_dies(procs: list[subprocess.Popen[bytes]]) -> None:
    instance = uuid.uuid4().hex
    line = Lifeline(instance)
    line.start()
    first = line.pid
    assert first is not None
    os.kill(first, 9)
    await wait_exited([first], 5, "the SIGKILLed watchdog")
    assert psutil.Process(first).status() == psutil.STATUS_ZOMBIE  # not reaped before check()
    line.check()
    assert line.pid not in (None, first) and line.restarts == 1
    pid = spawn(procs, instance)
    unclean_death(line)
    await wait_exited([pid], 5, "the marked process, the restarted watchdog's work")


async def test_clean_close_waits_for_the_watchdog(procs: list[subprocess.Popen[bytes]]) -> None:
    line = Lifeline(uuid.uuid4().hex)
    line.start()
    pid = line.pid
    line.close()
    assert line._proc is not None and line._proc.returncode == 0
    assert alive([pid or 0]) == []


async def test_the_pipe_does_not_leak_into_children(procs: list[subprocess.Popen[bytes]]) -> None:
    # A child holding the write end would keep the watchdog from ever seeing our death.
    line = Lifeline(uuid.uuid4().hex)
    line.start()
    try:
        assert line._fd is not None
        child = psutil.Process(spawn(procs, None))
        target = os.readlink(f"/proc/{os.getpid()}/fd/{line._fd}")
        held = {os.readlink(f"/proc/{child.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{child.pid}/fd")}
        assert target not in held
    finally:
        line.close()
