"""The table of agents' known failure modes (`RULES`: a kind and the pattern that gives it
away, most specific first), the kinds there are, and how each agent is logged in. Read by
`bridge.diagnostics.classify`; every rule has a test row in tests/diagnostics/test_classify.py."""

from __future__ import annotations

import re
from dataclasses import dataclass


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
FAMILY = {
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
