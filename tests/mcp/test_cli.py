"""`agent-bridge mcp list|check`, `doctor` and `prompt` with config-wired MCP servers, run as
subprocesses against real MCP servers (the `mcp` package's): tools of the good ones, and for
each broken one exactly what is wrong with a fix."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.support import client_config
from tests.conftest import ROOT, bridge_cmd, subprocess_env

ECHO_MCP = ROOT / "tests" / "fixtures" / "codex" / "echo_mcp.py"
TOKEN = "tok-" + "0123456789abcdef"


@pytest.fixture
def http_server() -> Iterator[int]:
    """The echo server over streamable HTTP, wanting `X-Test-Token: TOKEN`."""
    proc = subprocess.Popen([sys.executable, str(ECHO_MCP), "--http", TOKEN], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        yield int(proc.stdout.readline().split()[0])
    finally:
        proc.kill()
        proc.wait()


def config(tmp: Path, port: int) -> Path:
    path = client_config(tmp)
    py, echo = json.dumps(sys.executable), json.dumps(str(ECHO_MCP))
    path.write_text(
        path.read_text()
        + f"""
[mcp_servers.echo]
command = {py}
args = [{echo}]
cwd = "{tmp}"

[mcp_servers.web]
url = "http://127.0.0.1:{port}/mcp"
headers = {{ X-Test-Token = "${{AB_TEST_MCP_TOKEN}}" }}

[mcp_servers.badtoken]
url = "http://127.0.0.1:{port}/mcp"
headers = {{ X-Test-Token = "wrong-token-value" }}

[mcp_servers.missing]
command = "no-such-mcp-server-command"

[mcp_servers.exits]
command = "/bin/sh"
args = ["-c", "echo 'cannot open database' >&2; exit 3"]

[mcp_servers.chatty]
command = "/bin/sh"
args = ["-c", "echo hello there; sleep 60"]

[mcp_servers.hangs]
command = "/bin/sleep"
args = ["60"]

[mcp_servers.down]
url = "http://127.0.0.1:9/mcp"
"""
    )
    return path


def run(tmp: Path, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [*bridge_cmd(), "--config", str(config(tmp, port)), "--state-dir", str(tmp / "state"), *args]
    env = subprocess_env(AB_TEST_MCP_TOKEN=TOKEN)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=tmp)


def test_list_shows_every_entry_without_values(tmp_path: Path, http_server: int) -> None:
    done = run(tmp_path, http_server, "mcp", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {r["name"]: r for r in json.loads(done.stdout)["mcpServers"]}
    assert list(rows) == ["echo", "web", "badtoken", "missing", "exits", "chatty", "hangs", "down"]
    assert rows["web"] == {
        "name": "web",
        "scope": "mcp_servers",
        "transport": "http",
        "target": f"http://127.0.0.1:{http_server}/mcp",
        "env": [],
        "headers": ["X-Test-Token"],
    }
    text = run(tmp_path, http_server, "mcp", "list").stdout
    assert "web" in text and "headers: X-Test-Token" in text
    assert TOKEN not in done.stdout + text and "wrong-token-value" not in done.stdout + text


def test_check_says_what_is_wrong_with_each_broken_server(tmp_path: Path, http_server: int) -> None:
    done = run(tmp_path, http_server, "mcp", "check", "--json", "--timeout", "4")
    assert done.returncode == 1, done.stderr
    out = {r["name"]: r for r in json.loads(done.stdout)["mcpServers"]}
    assert out["echo"]["ok"] and out["echo"]["tools"] == ["echo"]
    assert out["web"]["ok"] and out["web"]["tools"] == ["echo"]
    expected = {
        "badtoken": ("answered HTTP 401", "credentials"),
        "missing": ("command 'no-such-mcp-server-command' not found on PATH", "absolute path"),
        "exits": ("it exited during the MCP handshake: cannot open database", "yourself"),
        "chatty": ("it wrote 'hello there' on stdout, which is not MCP JSON-RPC", "stderr"),
        "hangs": ("no answer to the MCP handshake within 4 s", "stdio"),
        "down": ("cannot connect to http://127.0.0.1:9/mcp", "start the server"),
    }
    for name, (summary, fix) in expected.items():
        assert not out[name]["ok"], out[name]
        assert summary in out[name]["summary"], out[name]
        assert fix in out[name]["fix"], out[name]
    assert TOKEN not in done.stdout + done.stderr


def test_check_one_server_by_name_and_an_unknown_name(tmp_path: Path, http_server: int) -> None:
    done = run(tmp_path, http_server, "mcp", "check", "echo")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok    echo") and "tools: echo" in done.stdout
    bad = run(tmp_path, http_server, "mcp", "check", "missing")
    assert bad.returncode == 1 and "FAIL  missing" in bad.stdout and "fix: install it" in bad.stdout
    unknown = run(tmp_path, http_server, "mcp", "check", "nope")
    assert unknown.returncode == 2 and "no MCP server 'nope'" in unknown.stderr


def test_doctor_includes_the_mcp_checks(tmp_path: Path, http_server: int) -> None:
    done = run(tmp_path, http_server, "doctor", "fake", "--json")
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    assert checks["mcp server echo"]["status"] == "ok"
    assert checks["mcp server missing"]["status"] == "error"
    assert "not found" in checks["mcp server missing"]["summary"] and checks["mcp server missing"]["fix"]
    assert done.returncode == 1


def test_prompt_prints_the_mcp_status_on_stderr(tmp_path: Path, http_server: int) -> None:
    path = client_config(tmp_path)
    path.write_text(
        path.read_text()
        + '[mcp_servers.tools]\ncommand = "/bin/true"\n[mcp_servers.old]\nurl = "http://127.0.0.1:9/sse"\ntransport = "sse"\n'
    )
    cmd = [*bridge_cmd(), "--config", str(path), "--state-dir", str(tmp_path / "state"), "prompt", "echo hi"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=subprocess_env(), timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hi\n"
    line = "mcp: tools sent; old failed: agent 'fake' does not support sse MCP servers"
    assert done.stderr.count(line) == 1, done.stderr


def test_check_finds_commands_as_agents_do_with_path_prepend(tmp_path: Path) -> None:
    bin_dir = tmp_path / "tools"
    bin_dir.mkdir()
    script = bin_dir / "echo-mcp"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {ECHO_MCP}\n")
    script.chmod(0o755)
    path = client_config(tmp_path)
    path.write_text(
        f"path_prepend = [{json.dumps(str(bin_dir))}]\n"
        + path.read_text()
        + '[mcp_servers.e]\ncommand = "echo-mcp"\n'
    )
    cmd = [*bridge_cmd(), "--config", str(path), "--state-dir", str(tmp_path / "state"), "mcp", "check", "e"]
    done = subprocess.run(
        cmd, capture_output=True, text=True, env=subprocess_env(), timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok    e ") and "tools: echo" in done.stdout
