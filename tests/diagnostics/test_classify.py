"""The failure classifier, table-driven: real messages and stderr lines from the agents (or
shaped exactly like them) → the kind of failure and the JSON-RPC code the client gets."""

from __future__ import annotations

import pytest

from bridge.diagnostics.classify import Evidence, classify, explain
from bridge.diagnostics.redact import default as default_redactor
from bridge.diagnostics.rules import KINDS, RULES
from bridge.errors import (
    AGENT_EXITED,
    AGENT_START_FAILED,
    AUTH_REQUIRED,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    AgentExitedError,
    AgentStartError,
    RpcError,
)

CASES: list[tuple[str, Evidence, str | None]] = [
    # -- binary problems, known at the source
    ("not found", Evidence(agent="gemini", command="gemini", kind="not_found"), "not_found"),
    ("not executable", Evidence(agent="x", command="/opt/x", kind="not_executable"), "not_executable"),
    ("exit 127, silent", Evidence(agent="x", exit_code=127, during_start=True), "not_found"),
    # -- node and installs
    (
        "node missing (GNU env)",
        Evidence(
            agent="gemini", stderr="/usr/bin/env: \u2018node\u2019: No such file or directory", exit_code=127
        ),
        "node_missing",
    ),
    ("node missing (BSD env)", Evidence(stderr="env: node: No such file or directory"), "node_missing"),
    (
        "npx cache broken",
        Evidence(stderr="Error: Cannot find module '/root/.npm/_npx/x/node_modules/y/dist/index.js'"),
        "broken_install",
    ),
    # -- flags the CLI does not know (too old, or wrong args)
    (
        "clap unexpected argument",
        Evidence(stderr="error: unexpected argument '--acp' found"),
        "wrong_version",
    ),
    ("commander unknown option", Evidence(stderr="error: unknown option '--acp'"), "wrong_version"),
    ("yargs unknown argument", Evidence(stderr="Unknown argument: acp"), "wrong_version"),
    ("old node syntax", Evidence(stderr="SyntaxError: Unexpected token '?'"), "wrong_version"),
    # -- logins and keys (the real CLIs' words)
    ("claude not logged in", Evidence(message="Claude Code: Not logged in · Please run /login"), "auth"),
    ("codex not logged in", Evidence(stderr="Not logged in"), "auth"),
    (
        "codex 401",
        Evidence(
            message="codex turn failed: unexpected status 401 Unauthorized: Incorrect API key provided: sk-test***."
        ),
        "auth",
    ),
    (
        "anthropic invalid key",
        Evidence(stderr='{"type":"authentication_error","message":"invalid x-api-key"}'),
        "auth",
    ),
    ("gemini key", Evidence(stderr="Error: GEMINI_API_KEY environment variable not found."), "auth"),
    ("acp auth_required code", Evidence(code=AUTH_REQUIRED, message="Authentication required"), "auth"),
    (
        "codex custom provider key",
        Evidence(message="Missing environment variable: `FAKE_API_KEY`. Create an API key"),
        "auth",
    ),
    ("oauth expired", Evidence(stderr="OAuth token has expired. Please obtain a new token"), "auth"),
    ("fake agent", Evidence(stderr="fake agent: not logged in; run `fake login` first", exit_code=7), "auth"),
    # -- limits
    ("http 429", Evidence(message="API Error: 429 Too Many Requests"), "rate_limit"),
    ("claude usage limit", Evidence(message="Claude AI usage limit reached|1767225600"), "rate_limit"),
    (
        "gemini quota",
        Evidence(stderr="[API Error: RESOURCE_EXHAUSTED: Quota exceeded for quota metric]"),
        "rate_limit",
    ),
    (
        "openai quota",
        Evidence(message="You exceeded your current quota, please check your plan"),
        "rate_limit",
    ),
    ("credit", Evidence(message="Your credit balance is too low to access the Anthropic API"), "rate_limit"),
    # -- models
    (
        "chatgpt plan model",
        Evidence(message="The 'gpt-5-pro' model is not supported when using Codex with a ChatGPT account."),
        "model_unavailable",
    ),
    ("model not found", Evidence(message='{"error":{"code":"model_not_found"}}'), "model_unavailable"),
    ("anthropic model", Evidence(message="model: claude-9 does not exist"), "model_unavailable"),
    # -- provider and network
    ("overloaded", Evidence(message="API Error: 529 Overloaded"), "overloaded"),
    ("dns", Evidence(message="stream disconnected: failed to lookup address information"), "network"),
    ("refused", Evidence(stderr="Error: connect ECONNREFUSED 127.0.0.1:443"), "network"),
    (
        "tls",
        Evidence(stderr="SELF_SIGNED_CERT_IN_CHAIN: self-signed certificate in certificate chain"),
        "network",
    ),
    ("disk", Evidence(stderr="ENOSPC: no space left on device, write"), "disk_full"),
    ("disk quota is not a usage limit", Evidence(stderr="write failed: Disk quota exceeded"), "disk_full"),
    # -- process fates
    ("sigkill", Evidence(exit_code=-9, stderr="something"), "killed"),
    ("oom exit 137", Evidence(exit_code=137), "killed"),
    ("exited at start", Evidence(exit_code=1, stderr="panic: boom", during_start=True), "exited_at_start"),
    ("exit mid-turn, unknown cause", Evidence(exit_code=1, stderr="panic: boom"), None),
    ("handshake", Evidence(message="it did not answer initialize within 2 s"), "handshake_timeout"),
    ("codex handshake", Evidence(message="no answer to initialize within 30 s"), "handshake_timeout"),
    ("claude handshake", Evidence(message="agent 'claude' did not answer initialize in time"), "handshake_timeout"),
    ("cwd", Evidence(message="working directory /nope does not exist"), "bad_cwd"),
    # -- nothing to say
    ("plain", Evidence(message="something odd happened"), None),
    ("empty", Evidence(), None),
]


@pytest.mark.parametrize(("label", "evidence", "kind"), CASES, ids=[c[0] for c in CASES])
def test_classify(label: str, evidence: Evidence, kind: str | None) -> None:
    diagnosis = classify(evidence)
    assert (diagnosis.kind if diagnosis else None) == kind
    if diagnosis is not None:
        assert diagnosis.summary and diagnosis.fix
        assert (diagnosis.code == AUTH_REQUIRED) == (kind == "auth")


def test_every_kind_has_a_row_and_a_fix() -> None:
    covered = {kind for _, _, kind in CASES}
    assert set(KINDS) <= covered
    assert {r.kind for r in RULES} <= set(KINDS)


def test_the_message_is_believed_before_stderr() -> None:
    # stderr carries an old network retry; the final answer is a login problem.
    ev = Evidence(message="Not logged in", stderr="Reconnecting... ECONNRESET\n")
    d = classify(ev)
    assert d is not None and d.kind == "auth"
    # Within stderr, the newest line wins.
    ev = Evidence(stderr="warning: rate limit close\nError: Not logged in\n")
    d = classify(ev)
    assert d is not None and d.kind == "auth" and d.line == "Error: Not logged in"


def test_login_fix_names_the_agents_own_command() -> None:
    for agent, command, words in [
        ("claude", "claude", "/login"),
        ("claude-acp", "claude-agent-acp", "/login"),
        ("codex", "codex", "codex login"),
        ("codex-acp", "codex-acp", "codex login"),
        ("gemini", "gemini", "GEMINI_API_KEY"),
        ("opencode", "opencode", "opencode auth login"),
        ("mine", "/opt/my-agent", "/opt/my-agent"),
    ]:
        d = classify(Evidence(agent=agent, command=command, kind="auth"))
        assert d is not None and words in d.fix, (agent, d)


def test_not_found_fix_has_the_install_command() -> None:
    d = classify(Evidence(agent="gemini", command="gemini", kind="not_found"))
    assert d is not None and "npm install -g @google/gemini-cli" in d.fix and "[agents.gemini]" in d.fix


# -- explain(): what a client receives ------------------------------------------------------------
def test_explain_start_failure_keeps_details_and_adds_the_fix() -> None:
    err = AgentStartError(
        "fake",
        "it exited during the handshake (exit code 7): fake agent: not logged in; run `fake login` first",
        {"exitCode": 7, "stderrTail": "fake agent: not logged in; run `fake login` first\n"},
    )
    out = explain(err)
    assert out.code == AUTH_REQUIRED
    assert out.data["originalCode"] == AGENT_START_FAILED
    assert out.data["kind"] == "auth" and out.data["agent"] == "fake"
    assert out.message.startswith("Agent 'fake' is not logged in")
    assert "Fix: " in out.message and "Details: agent 'fake' could not start" in out.message
    assert out.data["stderrTail"].startswith("fake agent: not logged in")


def test_explain_exit_uses_the_stderr_line() -> None:
    err = AgentExitedError("gemini", 1, "Loaded cached credentials.\n[API Error: 429 Too Many Requests]\n")
    out = explain(err)
    assert out.code == AGENT_EXITED and out.data["kind"] == "rate_limit"
    assert "usage or rate limit" in out.message


def test_explain_an_agents_own_error_with_the_agent_named_by_the_server() -> None:
    err = RpcError(
        INTERNAL_ERROR, "codex turn failed: unexpected status 401 Unauthorized", {"agent": "codex"}
    )
    out = explain(err, command="codex")
    assert out.code == AUTH_REQUIRED and "codex login" in out.message


def test_explain_leaves_client_mistakes_and_unknown_failures_alone() -> None:
    mistake = RpcError(INVALID_PARAMS, "unknown agent 'x'; known agents: a", {"field": "_meta.bridge.agent"})
    assert explain(mistake) is mistake
    unknown = RpcError(INTERNAL_ERROR, "something odd")
    assert explain(unknown) is unknown


def test_explain_is_idempotent() -> None:
    once = explain(AgentStartError("x", "y", {"kind": "not_found", "command": "x"}))
    twice = explain(once)
    assert twice.message == once.message and twice.data == once.data


def test_explain_masks_secrets_even_when_it_has_nothing_to_add() -> None:
    default_redactor().add(["hunter2-very-secret"])
    err = RpcError(
        INTERNAL_ERROR,
        "odd: hunter2-very-secret sk-ant-api03-AAAABBBBCCCCDDDD",
        {"stderrTail": "hunter2-very-secret"},
    )
    out = explain(err)
    text = f"{out.message} {out.data}"
    assert "hunter2-very-secret" not in text and "sk-ant-api03" not in text and "***" in text
