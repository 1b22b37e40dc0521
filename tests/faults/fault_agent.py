#!/usr/bin/env python3
"""The fake ACP agent (tests/fakes/fake_acp_agent.py) plus prompt words for fault tests:

  drip N SECONDS       N chunks SECONDS apart without touching the state file (safe to
                       SIGKILL mid-stream: the session stays resumable); honours cancel
  tool SECONDS         a tool call whose work is a child process (`sleep SECONDS`); honours
                       session/cancel by killing the child and failing the tool call
  tool_stuck SECONDS   the same tool call, but cancel is ignored (the bridge must force it)
  family               starts a process family and reports every pid in one chunk
                       ("family: PID PID ..."), then ends the turn with them still running:
                       a plain child, a child that setsid()s away, a daemon that double-forks
                       out of the agent's tree (re-parented to the subreaper), a child that
                       ignores SIGTERM, and a child with an empty environment (no marker)
Everything else is the base fake's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes"))

import fake_acp_agent as base

_base_run_prompt = base.run_prompt

DAEMONIZE = """
import os, sys, time
if os.fork():
    os._exit(0)
os.setsid()
if os.fork():
    os._exit(0)
sys.stdout.write(str(os.getpid()) + "\\n")
sys.stdout.flush()
os.close(1)
time.sleep(3600)
"""
TRAP_TERM = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(3600)"
SETSID = "import os, time\nos.setsid()\ntime.sleep(3600)"
QUIET = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


def _family() -> list[int]:
    pids = [
        subprocess.Popen(["sleep", "3600"], **QUIET).pid,
        subprocess.Popen([sys.executable, "-c", SETSID], **QUIET).pid,
        subprocess.Popen([sys.executable, "-c", TRAP_TERM], **QUIET).pid,
        subprocess.Popen(["sleep", "3601"], env={}, **QUIET).pid,
    ]
    daemon = subprocess.Popen(
        [sys.executable, "-c", DAEMONIZE],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert daemon.stdout is not None
    pids.append(int(daemon.stdout.readline()))
    daemon.wait()
    return pids


def _tool(sid: str, seconds: float, *, honour_cancel: bool) -> str:
    work = subprocess.Popen(["sleep", str(seconds)], **QUIET)
    base.update(
        sid,
        {
            "sessionUpdate": "tool_call",
            "toolCallId": "tool1",
            "title": f"sleep {seconds:g}",
            "kind": "execute",
            "status": "in_progress",
        },
    )
    while work.poll() is None:
        if honour_cancel and sid in base.cancelled:
            work.kill()
            work.wait()
            base.update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": "tool1", "status": "failed"})
            return "cancelled"
        time.sleep(0.02)
    base.update(sid, {"sessionUpdate": "tool_call_update", "toolCallId": "tool1", "status": "completed"})
    return "end_turn"


def run_prompt(rid: int, params: dict) -> None:
    sid = params["sessionId"]
    text = " ".join(b.get("text", "") for b in params.get("prompt", []) if b.get("type") == "text").strip()
    word, _, rest = text.partition(" ")
    if word == "drip":
        base.cancelled.discard(sid)
        n, delay = rest.split()
        stop = "end_turn"
        for i in range(int(n)):
            if sid in base.cancelled:
                stop = "cancelled"
                break
            base.send(
                {
                    "method": "session/update",
                    "params": {
                        "sessionId": sid,
                        "update": {
                            "sessionUpdate": "agent_message_chunk",
                            "content": {"type": "text", "text": f"drip {i} "},
                        },
                    },
                }
            )
            time.sleep(float(delay))
    elif word in ("tool", "tool_stuck"):
        base.cancelled.discard(sid)
        stop = _tool(sid, float(rest or "30"), honour_cancel=word == "tool")
    elif word == "family":
        base.chunk(sid, "family: " + " ".join(str(p) for p in _family()))
        stop = "end_turn"
    else:
        _base_run_prompt(rid, params)
        return
    base.send({"id": rid, "result": {"stopReason": stop}})


def save(sid: str) -> None:
    # Atomic, unlike the base fake's: these tests SIGKILL agents mid-turn, and a torn state
    # file would make the resumed agent fail for a reason that is not the one under test.
    if base.STATE_DIR:
        path = os.path.join(base.STATE_DIR, sid + ".json")
        with open(f"{path}.{os.getpid()}.tmp", "w") as f:
            json.dump(base.state[sid], f)
        os.replace(f"{path}.{os.getpid()}.tmp", path)


base.run_prompt = run_prompt
base.save = save

if __name__ == "__main__":
    base.main()
