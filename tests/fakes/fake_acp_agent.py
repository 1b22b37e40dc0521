#!/usr/bin/env python3
"""A fake ACP agent: a real subprocess speaking ACP v1 on stdio, scripted by the prompt.

The first word of the prompt text picks the behaviour:
  echo TEXT            one agent_message_chunk with TEXT
  stream N             N agent_message_chunk updates (messageId m1), then end_turn
  slow N SECONDS       N chunks, SECONDS apart (cancel tests); stops early on session/cancel
  permission           tool_call, session/request_permission, then writes the chosen optionId
  read PATH            fs/read_text_file PATH and echoes the content
  write PATH TEXT      fs/write_text_file
  terminal CMD         terminal/create + wait_for_exit + output + release
  unknown              an update kind this protocol version does not know, plus _meta/extra fields
  crash [CODE]         prints to stderr and exits with CODE (default 3) mid-turn
  hang                 never answers (stall tests); ignores session/cancel
  ignore_cancel N      like slow, but ignores session/cancel
  spawn                starts a grandchild that setsid()s away, then hangs
  plan                 a plan update
  edit                 a thought, an edit tool call with a diff and its output, a usage update
                       with a cost (what the inspector's timeline shows)
  usage                a turn whose result carries the unstable `usage` field
  gate N PATH          N/2 chunks, then waits until PATH exists, then the other N/2 (a turn that
                       is provably still running while a test does something else)
  inject B64           writes the base64-decoded bytes to stdout as they are ($SID becomes the
                       session id), then one chunk "injected" and end_turn (hostile agent output)
  inject_big N         a line of N bytes, then as inject
  costly               a turn with usage (thoughtTokens too) and a usage_update whose cost
                       (EUR) is cumulative over this process's turns of the session
  recall               echoes "prior: " and the transcript block the bridge sent with a
                       prompt of this agent session (a continuation), or "prior: none"
Environment: FAKE_ACP_START=exit|noinit|banner|authreq, FAKE_ACP_STATE=DIR (sessions kept
there so load/resume work across processes; empty: a restart forgets every session),
FAKE_ACP_CAPS=json (agentCapabilities override), FAKE_ACP_FORGET=1|internal|auth (load and
resume fail as for a session the agent lost: -32002, Gemini's -32603 "session not found", or
an auth error that is not a lost session).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
import uuid

out_lock = threading.Lock()
pending: dict[int, dict] = {}
pending_cv = threading.Condition()
next_id = [1000]
cancelled: set[str] = set()
modes = {"default": "Default", "plan": "Plan"}
state: dict[str, dict] = {}
spent: dict[str, float] = {}  # cost per session, in this process
STATE_DIR = os.environ.get("FAKE_ACP_STATE")


def send(obj: dict) -> None:
    obj["jsonrpc"] = "2.0"
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def update(sid: str, upd: dict) -> None:
    send({"method": "session/update", "params": {"sessionId": sid, "update": upd}})
    keep(sid).setdefault("history", []).append(upd)
    save(sid)


def request(method: str, params: dict) -> dict:
    with pending_cv:
        next_id[0] += 1
        rid = next_id[0]
    send({"id": rid, "method": method, "params": params})
    with pending_cv:
        while rid not in pending:
            pending_cv.wait()
        return pending.pop(rid)


def keep(sid: str) -> dict:
    if sid not in state and STATE_DIR and os.path.exists(os.path.join(STATE_DIR, sid + ".json")):
        with open(os.path.join(STATE_DIR, sid + ".json")) as f:
            state[sid] = json.load(f)
    return state.setdefault(sid, {"mode": "default", "model": "fast", "history": []})


def save(sid: str) -> None:
    if STATE_DIR:
        # Atomic (write aside, then rename): an agent killed mid-save (its daemon SIGKILLed)
        # must leave the previous state, not a truncated file the next load cannot parse.
        path = os.path.join(STATE_DIR, sid + ".json")
        aside = f"{path}.{os.getpid()}.tmp"
        with open(aside, "w") as f:
            json.dump(state[sid], f)
        os.replace(aside, path)


def config_options(sid: str) -> list:
    s = keep(sid)
    return [
        {
            "id": "mode",
            "name": "Mode",
            "category": "mode",
            "type": "select",
            "currentValue": s["mode"],
            "options": [{"value": k, "name": v} for k, v in modes.items()],
        },
        {
            "id": "model",
            "name": "Model",
            "category": "model",
            "type": "select",
            "currentValue": s["model"],
            "options": [{"value": "fast", "name": "Fast"}, {"value": "smart", "name": "Smart"}],
        },
    ]


def session_state(sid: str) -> dict:
    return {
        "modes": {
            "currentModeId": keep(sid)["mode"],
            "availableModes": [{"id": k, "name": v} for k, v in modes.items()],
        },
        "configOptions": config_options(sid),
    }


def chunk(sid: str, text: str) -> None:
    update(
        sid,
        {
            "sessionUpdate": "agent_message_chunk",
            "messageId": "m1",
            "content": {"type": "text", "text": text},
        },
    )


def run_prompt(rid: int, params: dict) -> None:
    sid = params["sessionId"]
    cancelled.discard(sid)
    blocks = params.get("prompt", [])
    # The bridge's transcript of a conversation an earlier agent session had (a continuation):
    # context, not the command; `recall` says what it held.
    prior = [b for b in blocks if ((b.get("_meta") or {}).get("bridge") or {}).get("priorConversation")]
    if prior:
        keep(sid)["prior"] = "\n".join(b.get("text", "") for b in prior)
    blocks = [b for b in blocks if b not in prior]
    text = " ".join(b.get("text", "") for b in blocks if b.get("type") == "text").strip()
    word, _, rest = text.partition(" ")
    stop = "end_turn"
    if word == "echo":
        chunk(sid, rest)
    elif word == "recall":
        chunk(sid, "prior: " + keep(sid).get("prior", "none"))
    elif word == "stream":
        n = int(rest or "10")
        s = keep(sid)
        for i in range(n):
            # Hot path: write directly, history only records the count.
            send(
                {
                    "method": "session/update",
                    "params": {
                        "sessionId": sid,
                        "update": {
                            "sessionUpdate": "agent_message_chunk",
                            "messageId": "m1",
                            "content": {"type": "text", "text": f"chunk {i} "},
                        },
                    },
                }
            )
        s.setdefault("history", []).append(
            {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": f"[{n} chunks]"}}
        )
        save(sid)
    elif word in ("slow", "ignore_cancel"):
        parts = rest.split()
        n, delay = int(parts[0]), float(parts[1]) if len(parts) > 1 else 0.2
        for i in range(n):
            if word == "slow" and sid in cancelled:
                stop = "cancelled"
                break
            chunk(sid, f"slow {i} ")
            time.sleep(delay)
        else:
            if sid in cancelled and word == "slow":
                stop = "cancelled"
    elif word == "permission":
        update(
            sid,
            {
                "sessionUpdate": "tool_call",
                "toolCallId": "t1",
                "title": "Write marker",
                "kind": "edit",
                "status": "pending",
            },
        )
        answer = request(
            "session/request_permission",
            {
                "sessionId": sid,
                "toolCall": {"toolCallId": "t1"},
                "options": [
                    {"optionId": "allow", "name": "Allow", "kind": "allow_once"},
                    {"optionId": "reject", "name": "Reject", "kind": "reject_once"},
                ],
            },
        )
        outcome = (answer.get("result") or {}).get("outcome") or {}
        chosen = outcome.get("optionId") if outcome.get("outcome") == "selected" else "cancelled"
        update(
            sid,
            {
                "sessionUpdate": "tool_call_update",
                "toolCallId": "t1",
                "status": "completed" if chosen == "allow" else "failed",
            },
        )
        chunk(sid, f"permission: {chosen}")
        if sid in cancelled:
            stop = "cancelled"
    elif word == "read":
        answer = request("fs/read_text_file", {"sessionId": sid, "path": rest})
        if "error" in answer:
            chunk(sid, f"read error: {answer['error']['message']}")
        else:
            chunk(sid, "content: " + answer["result"]["content"])
    elif word == "write":
        path, _, content = rest.partition(" ")
        answer = request("fs/write_text_file", {"sessionId": sid, "path": path, "content": content})
        chunk(sid, "written" if "result" in answer else "write failed")
    elif word == "terminal":
        created = request("terminal/create", {"sessionId": sid, "command": "/bin/sh", "args": ["-c", rest]})
        tid = created["result"]["terminalId"]
        request("terminal/wait_for_exit", {"sessionId": sid, "terminalId": tid})
        output = request("terminal/output", {"sessionId": sid, "terminalId": tid})
        request("terminal/release", {"sessionId": sid, "terminalId": tid})
        chunk(sid, "terminal: " + output["result"]["output"])
    elif word == "unknown":
        send(
            {
                "method": "session/update",
                "params": {
                    "sessionId": sid,
                    "_meta": {"vendor.example/x": 1},
                    "update": {"sessionUpdate": "future_kind_x", "payload": {"a": [1, 2]}},
                },
            }
        )
        update(
            sid,
            {
                "sessionUpdate": "agent_message_chunk",
                "content": {"type": "text", "text": "after unknown"},
                "_meta": {"vendor.example/trace": "abc"},
            },
        )
    elif word == "gate":
        count, path = rest.split(maxsplit=1)
        n = int(count)
        for i in range(n):
            if i == n // 2:
                while not os.path.exists(path):
                    time.sleep(0.01)
            chunk(sid, f"chunk {i} ")
    elif word in ("inject", "inject_big"):
        if word == "inject":
            data = base64.b64decode(rest).replace(b"$SID", sid.encode())
        else:
            data = b'{"jsonrpc":"2.0","method":"x","params":"' + b"a" * int(rest) + b'"}\n'
        with out_lock:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        chunk(sid, "injected")
    elif word == "costly":
        # A turn that costs 0.5 EUR: the cumulative cost of this process's runs of the
        # session (what ACP's usage_update.cost is), from zero at each start.
        spent[sid] = spent.get(sid, 0.0) + 0.5
        chunk(sid, "spent")
        update(
            sid,
            {"sessionUpdate": "usage_update", "used": 100, "size": 1000, "cost": {"amount": spent[sid], "currency": "EUR"}},
        )
    elif word == "plan":
        update(
            sid,
            {
                "sessionUpdate": "plan",
                "entries": [{"content": "step one", "priority": "high", "status": "in_progress"}],
            },
        )
    elif word == "edit":
        update(
            sid,
            {
                "sessionUpdate": "agent_thought_chunk",
                "content": {"type": "text", "text": "The greeting needs a name."},
            },
        )
        diff = {
            "type": "diff",
            "path": "/work/hello.py",
            "oldText": 'print("hello")\n',
            "newText": 'print("hello, world")\n',
        }
        update(
            sid,
            {
                "sessionUpdate": "tool_call",
                "toolCallId": "e1",
                "title": "Edit hello.py",
                "kind": "edit",
                "status": "in_progress",
                "content": [diff],
            },
        )
        output = {"type": "content", "content": {"type": "text", "text": "1 line changed"}}
        update(
            sid,
            {
                "sessionUpdate": "tool_call_update",
                "toolCallId": "e1",
                "status": "completed",
                "content": [diff, output],
            },
        )
        update(
            sid,
            {
                "sessionUpdate": "usage_update",
                "used": 1200,
                "size": 200000,
                "cost": {"amount": 0.0123, "currency": "USD"},
            },
        )
        chunk(sid, "Done: hello.py greets the world.")
    elif word == "crash":
        sys.stderr.write("fake agent: fatal error, giving up\n")
        sys.stderr.flush()
        os._exit(int(rest or "3"))
    elif word == "hang":
        while True:
            time.sleep(3600)
    elif word == "spawn":
        subprocess.Popen(
            [sys.executable, "-c", "import os,time\nos.setsid()\ntime.sleep(3600)"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        subprocess.Popen(
            ["sleep", "3600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        chunk(sid, "spawned")
    else:
        chunk(sid, f"you said: {text}")
    if sid in cancelled and word not in ("ignore_cancel",):
        stop = "cancelled"
    result = {"stopReason": stop, "_meta": {"fake": True}}
    if word == "usage":
        # The unstable per-turn usage of ACP's unstable schema, at the result's root.
        result["usage"] = {"totalTokens": 30, "inputTokens": 20, "outputTokens": 10}
    elif word == "costly":
        result["usage"] = {"totalTokens": 30, "inputTokens": 20, "outputTokens": 10, "thoughtTokens": 4, "cachedReadTokens": 5}
    send({"id": rid, "result": result})


def handle(msg: dict) -> None:
    if "method" not in msg:
        with pending_cv:
            pending[msg["id"]] = msg
            pending_cv.notify_all()
        return
    method, params, rid = msg["method"], msg.get("params") or {}, msg.get("id")
    if method == "initialize":
        if os.environ.get("FAKE_ACP_START") == "noinit":
            return
        caps = {
            "loadSession": True,
            "promptCapabilities": {"image": True, "embeddedContext": True},
            "mcpCapabilities": {"http": True, "sse": False},
            "sessionCapabilities": {"resume": {}, "list": {}, "close": {}, "fork": {}},
        }
        if os.environ.get("FAKE_ACP_CAPS"):
            caps = json.loads(os.environ["FAKE_ACP_CAPS"])
        send(
            {
                "id": rid,
                "result": {
                    "protocolVersion": 1,
                    "agentCapabilities": caps,
                    "authMethods": [{"id": "fake-login", "name": "Fake login"}],
                    "agentInfo": {"name": "fake-acp", "version": "1.0"},
                },
            }
        )
    elif method == "authenticate":
        send({"id": rid, "result": {"_meta": {"authenticated": params.get("methodId")}}})
    elif method == "session/new":
        if os.environ.get("FAKE_ACP_START") == "authreq":
            send({"id": rid, "error": {"code": -32000, "message": "Authentication required"}})
            return
        sid = "agent-" + uuid.uuid4().hex[:8]
        keep(sid)["cwd"] = params.get("cwd")
        keep(sid)["mcpServers"] = params.get("mcpServers")
        keep(sid)["meta"] = params.get("_meta")
        save(sid)
        send(
            {
                "id": rid,
                "result": {
                    "sessionId": sid,
                    **session_state(sid),
                    "_meta": {"fake": {"mcpServers": params.get("mcpServers"), "cwd": params.get("cwd")}},
                },
            }
        )
        update(
            sid,
            {
                "sessionUpdate": "available_commands_update",
                "availableCommands": [{"name": "help", "description": "Show help"}],
            },
        )
    elif method in ("session/load", "session/resume"):
        sid = params["sessionId"]
        forget = os.environ.get("FAKE_ACP_FORGET")
        if forget == "internal":
            # How Gemini CLI words it: an internal error, not ACP's -32002.
            send(
                {"id": rid, "error": {"code": -32603, "message": f"Internal error: session not found: {sid}"}}
            )
            return
        if forget == "auth":
            send({"id": rid, "error": {"code": -32000, "message": "Authentication required"}})
            return
        if forget or (
            not (STATE_DIR and os.path.exists(os.path.join(STATE_DIR, sid + ".json"))) and sid not in state
        ):
            send({"id": rid, "error": {"code": -32002, "message": f"no such session {sid}"}})
            return
        if method == "session/load":
            for upd in list(keep(sid).get("history", [])):
                send({"method": "session/update", "params": {"sessionId": sid, "update": upd}})
        echo = {"fake": {"mcpServers": params.get("mcpServers"), "cwd": params.get("cwd")}}
        send({"id": rid, "result": {**session_state(sid), "_meta": echo}})
    elif method == "session/fork":
        parent = keep(params["sessionId"])
        sid = "agent-" + uuid.uuid4().hex[:8]
        state[sid] = json.loads(json.dumps(parent))
        save(sid)
        echo = {"fake": {"mcpServers": params.get("mcpServers"), "cwd": params.get("cwd")}}
        send({"id": rid, "result": {"sessionId": sid, **session_state(sid), "_meta": echo}})
    elif method == "session/prompt":
        threading.Thread(target=run_prompt, args=(rid, params), daemon=True).start()
    elif method == "session/cancel":
        cancelled.add(params.get("sessionId"))
    elif method == "session/set_mode":
        keep(params["sessionId"])["mode"] = params["modeId"]
        save(params["sessionId"])
        send({"id": rid, "result": {}})
        update(
            params["sessionId"], {"sessionUpdate": "current_mode_update", "currentModeId": params["modeId"]}
        )
    elif method == "session/set_config_option":
        s = keep(params["sessionId"])
        if params["configId"] not in ("mode", "model"):
            send({"id": rid, "error": {"code": -32602, "message": "unknown config option"}})
            return
        s[params["configId"]] = params["value"]
        save(params["sessionId"])
        send({"id": rid, "result": {"configOptions": config_options(params["sessionId"])}})
    elif method == "_fake/echo":
        send({"id": rid, "result": {"echo": params}})
    elif rid is not None:
        send({"id": rid, "error": {"code": -32601, "message": f"unknown method {method}"}})


def main() -> None:
    start = os.environ.get("FAKE_ACP_START")
    if start == "exit":
        sys.stderr.write("fake agent: not logged in; run `fake login` first\n")
        sys.exit(7)
    if start == "banner":
        sys.stdout.write("Welcome to fake agent v1! Visit https://example.invalid/login\n")
        sys.stdout.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        handle(msg)


if __name__ == "__main__":
    main()
