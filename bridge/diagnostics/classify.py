"""Recognising agents' known failure modes: an exit code, a stderr tail or a protocol error
in, a `Diagnosis` out — what happened, in words a user knows, and what to do about it.

Pure and table-driven (`RULES`): no I/O, so every rule has a test row in
`tests/diagnostics/test_classify.py`, and the list of kinds is `spec/errors.md`.
`explain()` applies it to an `RpcError` on its way to a client: the message gains the
diagnosis and the fix, `data` gains `kind` and `fix`, a credentials problem takes ACP's
`auth_required` code (-32000), and secrets are masked.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bridge.diagnostics.redact import Redactor
from bridge.diagnostics.redact import default as default_redactor
from bridge.diagnostics.rules import FAMILY, KINDS, LOGIN_FIX, RULES, SETUP
from bridge.errors import (
    AGENT_START_FAILED,
    AUTH_REQUIRED,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    NOT_OWNER,
    PARSE_ERROR,
    READ_ONLY,
    REQUEST_CANCELLED,
    RESOURCE_NOT_FOUND,
    SESSION_BUSY,
    STORE_ERROR,
    TURN_STALLED,
    RpcError,
)


@dataclass(frozen=True)
class Evidence:
    """What is known about a failure. Every field is optional."""

    agent: str | None = None
    command: str | None = None  # the agent's configured command (its binary name or path)
    cmdline: str | None = None  # the whole command line, for "run it in a terminal"
    exit_code: int | None = None  # negative: killed by that signal
    stderr: str = ""
    message: str = ""  # the error message (the agent's own, or the bridge's)
    code: int | None = None  # the JSON-RPC error code, if any
    kind: str | None = None  # already known at the source (e.g. "not_found")
    during_start: bool = False  # the agent failed before its session was open


@dataclass(frozen=True)
class Diagnosis:
    kind: str  # stable identifier, listed in spec/errors.md
    summary: str  # what happened, for a person
    fix: str  # what to do
    code: int | None = None  # the JSON-RPC code the error should carry (None: keep it)
    line: str | None = None  # the line of the message or stderr that gave it away


def family(agent: str | None, command: str | None) -> str | None:
    """Which known CLI this is: by agent name, else by the command's file name."""
    for candidate in (agent, os.path.basename(command) if command else None):
        if candidate:
            if candidate in LOGIN_FIX:
                return candidate
            if candidate in FAMILY:
                return FAMILY[candidate]
    return None


def _install_hint(agent: str | None, command: str | None) -> str | None:
    from bridge.config import INSTALL_HINTS  # the config module is loaded by then; keeps this module light

    fam = family(agent, command)
    for key in (agent, fam):
        if key and key in INSTALL_HINTS:
            return INSTALL_HINTS[key]
    return None


def _cmd(ev: Evidence) -> str:
    return ev.command or ev.agent or "the agent"


def _cmdline(ev: Evidence) -> str:
    line = ev.cmdline or _cmd(ev)
    return line if len(line) <= 200 else line[:197] + "..."


def _name(ev: Evidence) -> str:
    return f"agent {ev.agent!r}" if ev.agent else "the agent"


def _fix(kind: str, ev: Evidence) -> tuple[str, str, int | None]:
    """(summary, fix, code) for a kind."""
    name, cmd, cmdline = _name(ev), _cmd(ev), _cmdline(ev)
    cfg = f"[agents.{ev.agent}]" if ev.agent else "[agents.NAME]"
    install = _install_hint(ev.agent, ev.command)
    if kind == "not_found":
        how = f"install it (`{install}`)" if install else "install it"
        return (
            f"`{cmd}` is not installed, or not on the PATH agent-bridge uses",
            f"{how}, or set `command` under {cfg} in the config file to its full path",
            None,
        )
    if kind == "not_executable":
        return (
            f"`{cmd}` exists but is not executable",
            f"make it executable (`chmod +x {cmd}`) or reinstall it",
            None,
        )
    if kind == "node_missing":
        return (
            f"`{cmd}` is a Node.js program and `node` was not found on its PATH",
            "install Node.js, or make its directory (nvm, volta, asdf, fnm...) visible to agent-bridge: "
            "keep login_shell_env on, or add it to path_prepend in the config file",
            None,
        )
    if kind == "broken_install":
        return (
            f"the installation of `{cmd}` is broken (a module is missing)",
            f"reinstall it{f' (`{install}`)' if install else ''}",
            None,
        )
    if kind == "wrong_version":
        return (
            f"`{cmd}` does not understand how agent-bridge runs it: it is probably too old (or too new)",
            f"upgrade it{f' (`{install}`)' if install else ''} and check its `args` under {cfg}",
            None,
        )
    if kind == "auth":
        fam = family(ev.agent, ev.command)
        how = LOGIN_FIX.get(fam or "", f"log in with `{cmdline}` in a terminal, or set its API key")
        return (
            f"{name} is not logged in, or its API key is missing or invalid",
            f"{how}; keys can also go in `env` under {cfg} in the config file",
            AUTH_REQUIRED,
        )
    if kind == "rate_limit":
        return (
            f"{name} hit a usage or rate limit",
            "wait until the limit resets, or switch to another plan, key or model",
            None,
        )
    if kind == "model_unavailable":
        return (
            f"the model {name} was asked to use is not available to this account",
            "choose another model (the session's `model` config option) or check your plan",
            None,
        )
    if kind == "overloaded":
        return (f"the model provider behind {name} is overloaded", "retry in a moment", None)
    if kind == "network":
        return (
            f"{name} could not reach its model provider",
            "check the network connection, proxy settings (HTTPS_PROXY) and any custom base URL",
            None,
        )
    if kind == "disk_full":
        return ("the disk is full", "free some disk space and retry", None)
    if kind == "killed":
        return (
            f"{name} was killed by a signal",
            "retry; if it keeps happening, check memory limits (an out-of-memory kill looks like this)",
            None,
        )
    if kind == "handshake_timeout":
        return (
            f"{name} started but never answered the protocol handshake",
            f"check that `{cmdline}` speaks the expected protocol (e.g. a missing --acp flag), "
            "run it in a terminal to see what it prints, or raise handshake_timeout in the config file",
            None,
        )
    if kind == "exited_at_start":
        return (
            f"{name} exited as it started",
            f"run `{cmdline}` in a terminal to see why; its last error output is in this error's data (stderrTail)",
            None,
        )
    if kind == "bad_cwd":
        return ("the session's working directory does not exist", "pass an existing directory as cwd", None)
    raise ValueError(f"unknown diagnosis kind {kind!r}")


def classify(ev: Evidence) -> Diagnosis | None:
    kind = ev.kind if ev.kind in KINDS else None
    line = None
    if kind is None and ev.code == AUTH_REQUIRED:
        kind = "auth"
    # The message first (it is what the agent chose to say), then its stderr, last line first
    # (the newest output is nearest to the failure).
    if kind is None:
        kind, line = _match(ev.message.splitlines())
    if kind is None:
        kind, line = _match(reversed(ev.stderr.splitlines()))
    if kind is None and ev.exit_code is not None:
        if ev.exit_code == 127:
            kind = "node_missing" if "node" in ev.stderr else "not_found"
        elif ev.exit_code < 0 or ev.exit_code in (137, 143):
            kind = "killed"
        elif ev.during_start:
            kind = "exited_at_start"
    if kind is None:
        return None
    summary, fix, code = _fix(kind, ev)
    return Diagnosis(kind, summary, fix, code, line.strip()[:300] if line else None)


def _match(lines: Iterable[str]) -> tuple[str | None, str | None]:
    for text in lines:
        if text.strip():
            for rule in RULES:
                if rule.pattern.search(text):
                    return rule.kind, text
    return None, None


# Codes whose messages are already precise: a client's mistake names its field, an unknown
# session is just that. Everything else (agent exits, start failures, the agent's own errors)
# is worth a diagnosis.
_KEEP = frozenset(
    {PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS, RESOURCE_NOT_FOUND, REQUEST_CANCELLED}
    | {SESSION_BUSY, TURN_STALLED, STORE_ERROR, NOT_OWNER, READ_ONLY}
)


def explain(
    err: RpcError, *, agent: str | None = None, command: str | None = None, cmdline: str | None = None
) -> RpcError:
    """`err` with a diagnosis and fix added when its cause is recognised, secrets masked.
    Idempotent: an error that already carries a `fix` is only redacted."""
    redactor = default_redactor()
    d: dict[str, Any] = dict(err.data) if isinstance(err.data, dict) else {}
    if "fix" in d or err.code in _KEEP:
        return _redacted(err, redactor)
    ev = evidence_of(err, agent=agent, command=command, cmdline=cmdline)
    agent = ev.agent
    diagnosis = classify(ev)
    if diagnosis is None:
        return _redacted(err, redactor)
    detail = err.message.rstrip(". ")
    if diagnosis.line and diagnosis.line.strip() not in detail:
        detail += f" (it said: {diagnosis.line.strip()[:300]})"
    fix = diagnosis.fix + ("; `agent-bridge doctor` checks every agent" if diagnosis.kind in SETUP else "")
    message = f"{diagnosis.summary[:1].upper()}{diagnosis.summary[1:]}. Fix: {fix}. Details: {detail}"
    code = diagnosis.code if diagnosis.code is not None else err.code
    d.update({"kind": diagnosis.kind, "fix": fix})
    if agent:
        d.setdefault("agent", agent)
    if code != err.code:
        d["originalCode"] = err.code
    out = RpcError(code, redactor.text(message), redactor.value(d))
    out.__cause__ = err
    return out


def evidence_of(
    err: RpcError, *, agent: str | None = None, command: str | None = None, cmdline: str | None = None
) -> Evidence:
    """What an error says about a failure (its message and the data the bridge attaches)."""
    d = err.data if isinstance(err.data, dict) else {}
    exit_code = d.get("exitCode")
    return Evidence(
        agent=agent or _str(d.get("agent")),
        command=command or _str(d.get("command")),
        cmdline=cmdline,
        exit_code=exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None,
        stderr=_str(d.get("stderrTail")) or "",
        message=err.message,
        code=err.code,
        kind=_str(d.get("kind")),
        during_start=err.code == AGENT_START_FAILED,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _redacted(err: RpcError, redactor: Redactor) -> RpcError:
    message = redactor.text(err.message)
    data = redactor.value(err.data)
    if message == err.message and data == err.data:
        return err
    out = RpcError(err.code, message, data)
    out.__cause__ = err
    return out


def explain_request(exc: Exception, spec: Any) -> Exception:
    """For the ACP server: `exc` (raised while answering a client's request) explained with
    the agent it concerns (`spec`: an `AgentSpec` or None). Non-RPC exceptions pass as they are."""
    from bridge.errors import find_rpc_error

    found = find_rpc_error(exc)
    if found is None:
        return exc
    if spec is None:
        return explain(found)
    return explain(
        found, agent=spec.name, command=spec.command, cmdline=shlex.join([spec.command, *spec.args])
    )
