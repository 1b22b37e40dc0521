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
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from bridge.diagnostics.redact import Redactor
from bridge.diagnostics.redact import default as default_redactor
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


@dataclass(frozen=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]


def _rx(*alternatives: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{a})" for a in alternatives), re.I)


# Matched against the error message and the stderr tail, first match wins: the most
# specific kinds come first (a 401 during a model call is a login problem, not a network one).
RULES: tuple[Rule, ...] = (
    Rule(
        "node_missing",
        _rx(
            r"env: \W?node\W?: No such file or directory",
            r"\bnode: (?:command )?not found",
            r"exec: \"?node\"?: executable file not found",
        ),
    ),
    Rule(
        "broken_install",
        _rx(r"Cannot find module ['\"]", r"ERR_MODULE_NOT_FOUND", r"MODULE_NOT_FOUND", r"postinstall"),
    ),
    Rule(
        "wrong_version",
        _rx(
            r"unknown option",
            r"unrecognized (?:option|argument)s?",
            r"unknown (?:command|subcommand|argument|flag)",
            r"unexpected argument",
            r"invalid choice",
            r"no such (?:option|command|subcommand)",
            r"error: Found argument",
            r"requires (?:a )?newer version",
            r"(?:requires|needs) node(?:\.js)? (?:version )?(?:>=? ?)?v?\d",
            r"Unsupported engine",
            r"SyntaxError: Unexpected token",
            r"is not supported by this version",
            r"unsupported protocol ?version",
        ),
    ),
    Rule(
        "disk_full", _rx(r"No space left on device", r"ENOSPC", r"disk (?:is )?full", r"Disk quota exceeded")
    ),
    Rule(
        "auth",
        _rx(
            r"not logged in",
            r"please (?:run )?/login",
            r"please log ?in",
            r"(?:login|authentication|auth) (?:is )?required",
            r"authentication[_ ](?:failed|error)",
            r"invalid[_ ](?:x-)?api[_ -]?key",
            r"incorrect api key",
            r"api key (?:is )?(?:not valid|invalid|missing|required|not found|not set)",
            r"(?:no|missing) api key",
            r"\bunauthori[sz]ed\b",
            r"\b401\b",
            r"\b403 Forbidden\b",
            r"(?:oauth )?token (?:has )?expired",
            r"invalid_grant",
            r"(?:could not find|missing|no) credentials",
            r"credentials? (?:not found|missing|expired)",
            r"Missing environment variable: `?\w*(?:KEY|TOKEN)\b",
            r"OPENAI_API_KEY|ANTHROPIC_API_KEY|GEMINI_API_KEY|GOOGLE_API_KEY",
        ),
    ),
    Rule(
        "rate_limit",
        _rx(
            r"rate[ _-]?limit",
            r"\b429\b",
            r"too many requests",
            r"usage[ _]limit",
            r"quota",
            r"RESOURCE_EXHAUSTED",
            r"insufficient_quota",
            r"credit balance is too low",
            r"out of credits",
            r"limit (?:reached|exceeded)",
        ),
    ),
    Rule(
        "model_unavailable",
        _rx(
            r"model[_ ]not[_ ]found",
            r"(?:unknown|invalid|unsupported) model",
            r"no such model",
            r"model[^\n]{0,80}(?:does not exist|not found|is not available|not supported|is not allowed)",
            r"(?:do not|does not|don't) have access to (?:the )?model",
            r"not supported when using [^\n]{0,40} with a ChatGPT account",
        ),
    ),
    Rule("overloaded", _rx(r"\boverloaded", r"\b529\b", r"\b503 Service Unavailable")),
    Rule(
        "network",
        _rx(
            r"ENOTFOUND",
            r"ECONNREFUSED",
            r"ECONNRESET",
            r"ETIMEDOUT",
            r"EAI_AGAIN",
            r"getaddrinfo",
            r"failed to lookup address",
            r"name (?:or service )?not known",
            r"does not resolve",
            r"network is unreachable",
            r"connection refused",
            r"error sending request",
            r"(?:unable|failed) to connect",
            r"certificate (?:verify failed|has expired)",
            r"self[- ]signed certificate",
            r"UNABLE_TO_(?:GET|VERIFY)_\w*CERT",
            r"tunneling socket could not be established",
        ),
    ),
    Rule(
        "handshake_timeout",
        _rx(
            r"did not answer initialize",
            r"no answer to initialize",
            r"never answered (?:the )?(?:initialize|handshake)",
        ),
    ),
    Rule("bad_cwd", _rx(r"working directory \S.* does not exist")),
)

# How each agent is logged in (keys: built-in agent names and command basenames).
LOGIN_FIX: dict[str, str] = {
    "claude": "run `claude` in a terminal and log in with /login (or run `claude setup-token`), "
    "or set ANTHROPIC_API_KEY",
    "codex": "run `codex login` in a terminal (or `codex login --with-api-key`), or set OPENAI_API_KEY",
    "gemini": "run `gemini` in a terminal and choose a login method, or set GEMINI_API_KEY",
    "qwen": "run `qwen` in a terminal and complete its login",
    "opencode": "run `opencode auth login` in a terminal",
    "goose": "run `goose configure` in a terminal",
}
_FAMILY = {
    "claude-acp": "claude",
    "claude-agent-acp": "claude",
    "claude-code-acp": "claude",
    "codex-acp": "codex",
}

KINDS = (
    "not_found",
    "not_executable",
    "node_missing",
    "broken_install",
    "wrong_version",
    "auth",
    "rate_limit",
    "model_unavailable",
    "overloaded",
    "network",
    "disk_full",
    "killed",
    "handshake_timeout",
    "exited_at_start",
    "bad_cwd",
)


# Problems of the installation, which `agent-bridge doctor` checks for every agent at once.
SETUP = frozenset({"not_found", "not_executable", "node_missing", "broken_install", "wrong_version"})


def family(agent: str | None, command: str | None) -> str | None:
    """Which known CLI this is: by agent name, else by the command's file name."""
    for candidate in (agent, os.path.basename(command) if command else None):
        if candidate:
            if candidate in LOGIN_FIX:
                return candidate
            if candidate in _FAMILY:
                return _FAMILY[candidate]
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
