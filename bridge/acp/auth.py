"""The logins `initialize` advertises (`authMethods`), and what `authenticate` / `logout` do.

- Native agents (`claude`, `codex`): ACP terminal auth. The client runs the bridge's own
  command again with `args` appended (`--login NAME`), in a terminal; the bridge then runs
  the CLI's interactive login (`claude auth login`, `codex login`) with the agent's
  configured command and environment, so the credentials land where the sessions look.
  Offered only to clients that set `clientCapabilities.auth.terminal` (ACP: agents MUST
  NOT otherwise); other clients get the same ids as `agent` methods, whose `authenticate`
  answers how to log in.
- The default agent, when it speaks ACP: its own methods, passed through. `agent` methods
  are forwarded by `authenticate`; its `terminal` methods (args for *its* invocation) are
  rewritten to run through the bridge: `--login NAME`, the agent's args in the env var
  `AGENT_BRIDGE_LOGIN_ARGS` (a JSON list; the bridge's own command line stays its own).

A session that fails for a missing login answers -32000 with these methods in
`error.data.authMethods` (`with_methods`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.core.adapter import AgentSpec
from bridge.wire.types import JsonObj

LOGIN_FLAG = "--login"
LOGIN_ARGS_ENV = "AGENT_BRIDGE_LOGIN_ARGS"


@dataclass(frozen=True)
class NativeLogin:
    name: str  # shown in the editor
    login: tuple[str, ...]  # appended to the agent's command, run interactively
    logout: tuple[str, ...]  # appended to the agent's command, run without a terminal


NATIVE: dict[str, NativeLogin] = {
    "claude": NativeLogin("Log in to Claude Code", ("auth", "login"), ("auth", "logout")),
    "codex": NativeLogin("Log in to Codex", ("login",), ("logout",)),
}


def native_login(spec: AgentSpec) -> NativeLogin | None:
    """The login of a natively driven agent (by protocol: a configured `claude` protocol
    agent logs in like Claude Code)."""
    return NATIVE.get(spec.protocol) if spec.protocol in ("claude", "codex") else None


def method_id(spec: AgentSpec) -> str:
    return f"{spec.name}-login"


def terminal_capable(client_capabilities: Mapping[str, Any] | None) -> bool:
    auth = (client_capabilities or {}).get("auth")
    return isinstance(auth, dict) and auth.get("terminal") is True


def native_method(spec: AgentSpec, terminal: bool) -> JsonObj:
    login = native_login(spec)
    assert login is not None
    command = " ".join([spec.command, *login.login])
    if terminal:
        return {
            "id": method_id(spec),
            "name": login.name,
            "description": f"Runs `{command}` in a terminal (through agent-bridge, with the agent's settings)",
            "type": "terminal",
            "args": [LOGIN_FLAG, spec.name],
            "env": {},
        }
    return {
        "id": method_id(spec),
        "name": login.name,
        "description": f"Log in once in a terminal: `agent-bridge login {spec.name}` (runs `{command}`)",
    }


def _terminal_args(method: JsonObj) -> list[str] | None:
    """The args of an agent's terminal method: stable `type: "terminal"`, or the draft form
    some agents still send in `_meta` (Qwen Code 0.24)."""
    if method.get("type") == "terminal":
        args = method.get("args")
    else:
        meta = method.get("_meta")
        if not (isinstance(meta, dict) and meta.get("type") == "terminal"):
            return None
        args = meta.get("args")
    return [a for a in args if isinstance(a, str)] if isinstance(args, list) else []


def passed_through(spec: AgentSpec, methods: list[JsonObj], terminal: bool) -> list[JsonObj]:
    """An ACP agent's own methods as the bridge advertises them."""
    out: list[JsonObj] = []
    for method in methods:
        if not isinstance(method, dict) or not isinstance(method.get("id"), str):
            continue
        args = _terminal_args(method)
        if args is None:
            if method.get("type") in (None, "agent"):
                out.append(copy.deepcopy(method))
            continue  # env_var and other types: the client sets up the agent, not us
        if not terminal:
            continue
        rewritten: JsonObj = {k: copy.deepcopy(v) for k, v in method.items() if k not in ("_meta", "args")}
        env = method.get("env")
        rewritten.update(
            type="terminal",
            args=[LOGIN_FLAG, spec.name],
            env={**(dict(env) if isinstance(env, dict) else {}), LOGIN_ARGS_ENV: json.dumps(args)},
        )
        out.append(rewritten)
    return out


def with_methods(data: Any, methods: list[JsonObj]) -> Any:
    """An auth_required error's data, with the methods that fix it."""
    if not methods:
        return data
    base = dict(data) if isinstance(data, dict) else ({} if data is None else {"detail": data})
    base.setdefault("authMethods", methods)
    return base


def login_args(env: Mapping[str, str]) -> list[str]:
    try:
        args = json.loads(env.get(LOGIN_ARGS_ENV) or "[]")
    except ValueError:
        return []
    return [a for a in args if isinstance(a, str)] if isinstance(args, list) else []


def login_argv(spec: AgentSpec, extra: list[str]) -> list[str] | None:
    """What `agent-bridge --login NAME` runs: the native CLI's login, or the ACP agent's own
    invocation with its terminal method's args (`extra`)."""
    native = native_login(spec)
    if native is not None:
        return [spec.command, *native.login, *extra]
    if spec.protocol == "acp" and extra:
        return [spec.command, *spec.args, *extra]
    return None


def logout_argv(spec: AgentSpec) -> list[str] | None:
    native = native_login(spec)
    return [spec.command, *native.logout] if native is not None else None
