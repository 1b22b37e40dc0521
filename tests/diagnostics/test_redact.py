"""Secret redaction: secret-named environment values and known key shapes become `***`;
everything else is left exactly as it was."""

from __future__ import annotations

import pytest

from bridge.diagnostics.redact import MASK, Redactor, is_secret_name, mask_mcp_servers

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


def test_passwords_in_urls_and_pwd_names() -> None:
    env = {
        "DATABASE_URL": "postgresql://app:s3cr3t-db-pass@db.internal:5432/app",
        "MYSQL_PWD": "mysql-password-1",
        "PWD": "/home/user/project",  # the working directory, not a password
        "OLDPWD": "/home/user",
        "PLAIN_URL": "https://example.com/path",
    }
    r = Redactor(env)
    # The URL stays readable; its password does not, in any URL and on its own.
    assert r.text(env["DATABASE_URL"]) == "postgresql://app:***@db.internal:5432/app"
    assert r.text("redis://:hunter2-xyz@cache:6379/0") == "redis://:***@cache:6379/0"
    assert r.text("auth failed for s3cr3t-db-pass") == "auth failed for ***"
    assert r.text("pw mysql-password-1") == "pw ***"
    assert r.text("cwd /home/user/project") == "cwd /home/user/project"
    assert r.text("see https://example.com/path and user@host") == "see https://example.com/path and user@host"
    assert is_secret_name("DB_PWD") and is_secret_name("SMTP_PASS")
    assert not is_secret_name("PWD") and not is_secret_name("OLDPWD") and not is_secret_name("DATABASE_URL")


def test_mcp_server_env_and_header_values_are_masked_in_a_copy() -> None:
    r = Redactor({})
    params = {
        "cwd": "/w",
        "mcpServers": [
            {"name": "a", "command": "/bin/a", "args": ["-v"], "env": [{"name": "K", "value": "v"}]},
            {"type": "http", "name": "b", "url": "http://h", "headers": [{"name": "Authorization", "value": "Bearer xyz-0123456789"}]},
        ],
    }
    out = mask_mcp_servers(params, r)
    assert out["mcpServers"][0]["env"] == [{"name": "K", "value": MASK}]  # short values too
    assert out["mcpServers"][1]["headers"] == [{"name": "Authorization", "value": MASK}]
    assert out["mcpServers"][0]["args"] == ["-v"] and out["cwd"] == "/w"
    assert params["mcpServers"][0]["env"][0]["value"] == "v"  # the agent still gets the original
    assert r.text("echoed Bearer xyz-0123456789") == "echoed ***"
    assert r.text("token=xyz-0123456789;") == "token=***;"
    assert mask_mcp_servers({"cwd": "/w"}, r) == {"cwd": "/w"}
    assert mask_mcp_servers(None, r) is None
