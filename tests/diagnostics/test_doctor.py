"""`agent-bridge doctor` run as a real command against a config of broken agents: the report
names each problem with its fix, `--json` says the same for tools, and the exit code is
non-zero exactly when something is broken."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import bridge_cmd, subprocess_env
from tests.diagnostics.support import broken_agents, fake_acp, write_config

TIMEOUT = 120  # the whole doctor run: handshakes are bounded at 2 s each, run concurrently


def doctor(tmp: Path, *args: str, config: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = [*bridge_cmd(), "doctor", "--state-dir", str(tmp / "state")]
    cmd += ["--config", str(config)] if config is not None else []
    cmd += args
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=subprocess_env(HOME=str(tmp / "home"), **env),
    )


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return write_config(
        tmp_path / "config.toml", broken_agents(tmp_path), handshake_timeout=2, login_shell_env=False
    )


NAMES = ["healthy", "missing", "noexec", "nologin", "crashy", "nonode", "mute", "oldcli", "future", "chatty"]


def test_report_for_broken_agents(tmp_path: Path, broken: Path) -> None:
    done = doctor(tmp_path, *NAMES, config=broken)
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    blocks = agent_blocks(out)
    assert blocks["healthy"][0].startswith("ok") and "handshake: ACP v1, fake-acp 1.0" in blocks["healthy"][1]
    assert blocks["chatty"][0].startswith("ok")  # a banner on stdout is not a failure
    expect = {
        "missing": [
            "is not installed",
            "looked in:",
            "fix: install it, or set `command` under [agents.missing]",
        ],
        "noexec": ["exists but is not executable", "fix: make it executable (`chmod +x"],
        "nologin": ["is not logged in", "run `fake login` first", "fix: log in with"],
        "crashy": ["exited as it started", "panic: index out of range", "fix: run `/bin/sh -c"],
        "nonode": ["`node` was not found", "fix: install Node.js"],
        "mute": ["never answered the protocol handshake", "missing --acp"],
        "oldcli": ["probably too old", "unknown option '--acp'"],
        "future": ["speaks ACP version 2"],
    }
    for name, phrases in expect.items():
        head, body = blocks[name]
        assert head.startswith("FAIL"), (name, head)
        for phrase in phrases:
            assert phrase in body, (name, phrase, body)
    assert f"{len(expect)} problems found" in out
    for check in ("config", "environment", "state dir", "session store", "logs"):
        assert any(line.split()[1:3] == check.split()[:2] or check in line for line in out.splitlines())


def agent_blocks(out: str) -> dict[str, tuple[str, str]]:
    """{agent: (status line, the indented lines under it)} from the text report."""
    lines = out.split("agents:\n", 1)[1].splitlines()
    blocks: dict[str, tuple[str, str]] = {}
    current = None
    for line in lines:
        if line.startswith("  ") and not line.startswith("        ") and line.split():
            status, name = line.split()[:2]
            current = name
            blocks[name] = (f"{status} {line}", "")
        elif current and line.startswith("        "):
            head, body = blocks[current]
            blocks[current] = (head, body + line.strip() + "\n")
    return blocks


def test_json_report(tmp_path: Path, broken: Path) -> None:
    done = doctor(tmp_path, "--json", *NAMES, config=broken)
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False
    agents = {a["name"]: a for a in report["agents"]}
    assert agents["healthy"]["status"] == "ok" and agents["healthy"]["version"]

    def kinds(name: str) -> set[Any]:
        return {c["details"].get("kind") for c in agents[name]["checks"]} | {
            c["details"].get("data", {}).get("kind") for c in agents[name]["checks"]
        }

    assert agents["missing"]["checks"][0]["details"]["searched"]
    assert "auth" in kinds("nologin")
    assert "exited_at_start" in kinds("crashy")
    assert "node_missing" in kinds("nonode")
    assert "handshake_timeout" in kinds("mute")
    for name in ("missing", "noexec", "nologin", "crashy", "nonode", "mute"):
        failed = [c for c in agents[name]["checks"] if c["status"] == "error"]
        assert failed and all(c["fix"] for c in failed), name


def test_healthy_setup_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    config = write_config(tmp_path / "config.toml", {"healthy": fake_acp()}, default_agent="healthy")
    done = doctor(tmp_path, "healthy", config=config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No problems found" in done.stdout


def test_damaged_store_and_bad_config_are_reported(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "sessions.db").write_bytes(b"SQLite format 3\x00" + b"\x13" * 4096)
    bad = tmp_path / "bad.toml"
    bad.write_text("[agents.x]\nprotocol = 'smoke-signals'\ncommand = 'x'\n")
    done = doctor(tmp_path, "--json", "nothing-here", config=bad)
    # A bad config is part of the report (other commands exit 2 on it).
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["config"]["status"] == "error" and "smoke-signals" in checks["config"]["summary"]
    assert checks["session store"]["status"] == "error" and checks["session store"]["fix"]


def test_a_healthy_store_passes_integrity_check(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    from bridge.store.sqlite import SqliteStore

    store = SqliteStore(str(state / "sessions.db"))
    store.open_sync()
    store.close_sync()
    done = doctor(
        tmp_path,
        "--json",
        "--agent",
        "healthy",
        "healthy",
        config=write_config(tmp_path / "c.toml", {"healthy": fake_acp()}),
    )
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["session store"]["status"] == "ok" and "integrity ok" in checks["session store"]["summary"]
    with sqlite3.connect(state / "sessions.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_secrets_never_appear_in_the_report(tmp_path: Path) -> None:
    (tmp_path / "home").mkdir()
    config = write_config(
        tmp_path / "config.toml",
        {
            "leaky": {
                "protocol": "acp",
                "command": "/bin/sh",
                "args": ["-c", 'echo "bad key $LEAKY_API_KEY" >&2; exit 1'],
            }
        },
    )
    done = doctor(tmp_path, "leaky", config=config, LEAKY_API_KEY="leaky-secret-0123456789")
    assert done.returncode == 1
    assert "bad key ***" in done.stdout and "leaky-secret-0123456789" not in done.stdout + done.stderr


def test_version_is_python(tmp_path: Path) -> None:
    """The fake agent is `python fake_acp_agent.py`: doctor reports the interpreter's version."""
    (tmp_path / "home").mkdir()
    config = write_config(tmp_path / "config.toml", {"healthy": fake_acp()})
    done = doctor(tmp_path, "--json", "healthy", config=config)
    (agent,) = json.loads(done.stdout)["agents"]
    assert agent["path"] == sys.executable and agent["version"].startswith("Python 3")
