"""Secret redaction: secret-named environment values and known key shapes become `***`;
everything else is left exactly as it was."""

from __future__ import annotations

import pytest

from bridge.diagnostics.redact import MASK, Redactor, is_secret_name

ENV = {
    "MY_SERVICE_API_KEY": "plain-looking-value-123",
    "GITHUB_TOKEN": "tok-0123456789",
    "DB_PASSWORD": "correct horse battery",
    "SHORT_SECRET": "1",  # a switch, not a secret
    "PATH": "/usr/bin:/bin",
    "SSH_AUTH_SOCK": "/tmp/ssh-agent.sock",  # a path, not a secret
}

MASKED = [
    ("env value", "using plain-looking-value-123 now", "using *** now"),
    ("env value inside a word boundary", "x=tok-0123456789;", "x=***;"),
    ("env value with spaces", "pw is correct horse battery", "pw is ***"),
    ("anthropic", "key sk-ant-api03-abcdefghijklmnopqrstuv end", "key *** end"),
    ("openai project", "sk-proj-abcdefghijklmnop1234", MASK),
    (
        "openai legacy",
        "Incorrect API key provided: sk-abcdefghijklmnopqrstuvwx.",
        "Incorrect API key provided: ***.",
    ),
    ("github", "ghp_abcdefghijklmnopqrstuvwxyz0123456789", MASK),
    ("google", "AIzaSyA-1234567890abcdefghijklmnopqrstu", MASK),
    ("bearer", "Authorization: Bearer abc.def-ghi_jklmnop", "Authorization: Bearer ***"),
    ("json apiKey", '{"apiKey": "abcdefgh12345"}', '{"apiKey": "***"}'),
    ("x-api-key header", "x-api-key: 0123456789abcdef", "x-api-key: ***"),
]

KEPT = [
    "task-1234567890abcdefghijklmnop",  # contains "sk-" inside a word
    "inputTokens: 123456789",
    "Basic authentication failed",
    "the secret is 1",
    "/tmp/ssh-agent.sock",
    "Bearer tokens",
]


@pytest.mark.parametrize(("label", "text", "expected"), MASKED, ids=[m[0] for m in MASKED])
def test_masked(label: str, text: str, expected: str) -> None:
    assert Redactor(ENV).text(text) == expected


@pytest.mark.parametrize("text", KEPT)
def test_kept(text: str) -> None:
    assert Redactor(ENV).text(text) == text


def test_secret_names() -> None:
    assert all(
        is_secret_name(n) for n in ["OPENAI_API_KEY", "GH_TOKEN", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD"]
    )
    assert not any(
        is_secret_name(n) for n in ["PATH", "HOME", "SSH_AUTH_SOCK", "KEYBOARD_LAYOUT_DIR", "TOKEN_FILE"]
    )


def test_json_values_are_redacted_deeply_and_copied() -> None:
    r = Redactor(ENV)
    msg = {"params": {"env": [{"name": "K", "value": "plain-looking-value-123"}], "n": 3}}
    out = r.value(msg)
    assert out == {"params": {"env": [{"name": "K", "value": MASK}], "n": 3}}
    assert msg["params"]["env"][0]["value"] == "plain-looking-value-123"


def test_longer_secret_containing_a_shorter_one_is_masked_whole() -> None:
    r = Redactor({"A_TOKEN": "abcdefgh", "B_TOKEN": "abcdefgh-and-more"})
    assert r.text("[abcdefgh-and-more]") == "[***]"


def test_added_values() -> None:
    r = Redactor({})
    r.add(["ws-token-0123456789"])
    assert r.text("token ws-token-0123456789") == "token ***"
