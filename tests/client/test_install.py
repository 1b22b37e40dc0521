"""`agent-bridge install / uninstall / install --list`, offline: a tiny local npm package
with a `qwen` bin, packed with `npm pack`, installed into the bridge's prefix under a tmp
data dir with npm told to stay offline and every proxy refusing. The bridge then finds the
agent there (`agent-bridge agents`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import bridge_cmd, subprocess_env
from tests.real_agents import require_program


@pytest.fixture(autouse=True)
def _npm() -> None:
    require_program("npm")


NPM = shutil.which("npm")

BIN = """#!/usr/bin/env node
if (process.argv[2] === "--version") { console.log("0.24.4"); process.exit(0); }
process.exit(1);
"""


def _tarball(tmp: Path) -> Path:
    src = tmp / "pkg"
    src.mkdir()
    (src / "package.json").write_text(
        json.dumps({"name": "@qwen-code/qwen-code", "version": "0.24.4", "bin": {"qwen": "cli.js"}})
    )
    (src / "cli.js").write_text(BIN)
    (src / "cli.js").chmod(0o755)
    assert NPM is not None
    done = subprocess.run(
        [NPM, "pack", "--pack-destination", str(tmp)], cwd=src, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    (tarball,) = tmp.glob("*.tgz")
    return tarball


def _env(tmp: Path) -> dict[str, str]:
    refuse = "http://127.0.0.1:9"
    return subprocess_env(
        AGENT_BRIDGE_DATA_DIR=str(tmp / "data"),
        HOME=str(tmp / "home"),
        npm_config_offline="true",
        npm_config_cache=str(tmp / "npm-cache"),
        npm_config_registry=refuse,
        HTTPS_PROXY=refuse,
        HTTP_PROXY=refuse,
        # Only the daemon's own prefix may provide `qwen` in this test.
        PATH=os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if "/.agents/" not in p),
    )


def _bridge(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*bridge_cmd(), *args], env=env, capture_output=True, text=True, timeout=300)


def test_install_finds_list_and_uninstall(tmp_path: Path) -> None:
    env = _env(tmp_path)
    (tmp_path / "home").mkdir()
    prefix_bin = tmp_path / "data" / "agents" / "node_modules" / ".bin"

    before = {r["name"]: r for r in json.loads(_bridge(env, "agents", "--json").stdout)["agents"]}
    if before["qwen"]["installed"]:
        pytest.skip("a qwen on PATH would hide the installed one")
    assert "agent-bridge install qwen" in before["qwen"]["install"]

    done = _bridge(env, "install", "qwen", "--from", str(_tarball(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert "installing" in done.stderr and "qwen 0.24.4 is ready" in done.stderr
    assert (prefix_bin / "qwen").exists()

    rows = {r["name"]: r for r in json.loads(_bridge(env, "agents", "--json").stdout)["agents"]}
    assert rows["qwen"]["installed"] and rows["qwen"]["path"] == str(prefix_bin / "qwen")
    assert rows["qwen"]["version"] == "0.24.4"

    listed = json.loads(_bridge(env, "install", "--list", "--json").stdout)
    by_agent = {r["agent"]: r for r in listed["agents"]}
    assert by_agent["qwen"]["installed"] == "0.24.4" and by_agent["claude"]["installed"] is None
    assert by_agent["claude-acp"]["package"] == "@agentclientprotocol/claude-agent-acp"
    assert by_agent["claude-acp"]["aliases"] == ["@zed-industries/claude-agent-acp"]

    done = _bridge(env, "uninstall", "qwen")
    assert done.returncode == 0, done.stderr
    assert not (prefix_bin / "qwen").exists()
    rows = {r["name"]: r for r in json.loads(_bridge(env, "agents", "--json").stdout)["agents"]}
    assert not rows["qwen"]["installed"]


def test_unknown_agent_and_old_package_names(tmp_path: Path) -> None:
    env = _env(tmp_path)
    done = _bridge(env, "install", "nope")
    assert done.returncode == 2 and "installable:" in done.stderr
    # A former package name names the same agent (nothing installed: nothing to remove).
    done = _bridge(env, "uninstall", "@zed-industries/codex-acp")
    assert done.returncode == 0 and "codex-acp is not installed" in done.stderr
