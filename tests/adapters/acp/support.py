"""Running the real ACP agents (Gemini CLI, OpenCode, the Zed adapters for Claude Code and
Codex) behind the real daemon, each against a scripted fake model server.

A `Kit` says, per agent, which CLI and fake dialect it needs, how its isolated HOME and
config files are laid out (notes/offline-agents.md), and how the fake model names its
shell and MCP tools. `Rig` is one test's world: the fake server, the tmp HOME, the daemon
config, and the daemon subprocess with its ACP client.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import psutil

from bridge.wire.types import JsonObj
from tests.acp_client import AcpClient
from tests.daemon_proc import DaemonProc, daemon_process
from tests.fakes import gemini as gem
from tests.fakes import openai_chat as chat
from tests.fakes import openai_responses as resp
from tests.fakes.anthropic import AnthropicDialect
from tests.fakes.model_server import FakeModelServer, ToolUse
from tests.real_agents import installed_major, package_path, require_cli

ROOT = Path(__file__).resolve().parents[3]
ECHO_MCP = ROOT / "tests" / "fixtures" / "acp" / "echo_mcp.py"
# Generous: two cores, other suites running beside us, Node start-up per agent.
TURN_TIMEOUT = 90.0


def _offline_env(home: Path) -> dict[str, str]:
    """An isolated HOME and XDG dirs; any outside connection goes to a refusing proxy."""
    dirs = {
        "HOME": home,
        "XDG_CONFIG_HOME": home / ".config",
        "XDG_DATA_HOME": home / ".local" / "share",
        "XDG_CACHE_HOME": home / ".cache",
        "XDG_STATE_HOME": home / ".local" / "state",
    }
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    env = {k: str(v) for k, v in dirs.items()}
    # Port 9 (discard) refuses: nothing leaves the machine, and nothing waits on a timeout.
    proxy = "http://127.0.0.1:9"
    env.update(
        HTTPS_PROXY=proxy,
        HTTP_PROXY=proxy,
        https_proxy=proxy,
        http_proxy=proxy,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def _gemini_setup(home: Path, url: str) -> tuple[list[str], dict[str, str]]:
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(gem.settings_json())
    return ["--acp"], {
        "GEMINI_API_KEY": "fake",
        "GOOGLE_GEMINI_BASE_URL": url,
    }


def _opencode_setup(home: Path, url: str) -> tuple[list[str], dict[str, str]]:
    config = home / "opencode.json"
    config.write_text(chat.opencode_config(url))
    env = {
        "OPENCODE_CONFIG": str(config),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
    }
    return ["acp"], env


def _qwen_setup(home: Path, url: str) -> tuple[list[str], dict[str, str]]:
    (home / ".qwen").mkdir(parents=True, exist_ok=True)
    (home / ".qwen" / "settings.json").write_text(chat.qwen_settings(url))
    return ["--acp"], {"OPENAI_API_KEY": "fake", "OPENAI_BASE_URL": f"{url}/v1"}


def _claude_setup(home: Path, url: str) -> tuple[list[str], dict[str, str]]:
    # claude-agent-acp 0.101 starts in `auto` mode, whose safety check needs a real account:
    # the classic default (ask before tools) instead.
    (home / ".claude").mkdir(parents=True, exist_ok=True)
    (home / ".claude" / "settings.json").write_text(json.dumps({"permissions": {"defaultMode": "default"}}))
    env = {
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": "sk-ant-fake",
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        # Newer Claude Code defers MCP tools behind ToolSearch; the fake model calls them directly.
        "ENABLE_TOOL_SEARCH": "false",
    }
    if os.geteuid() == 0:
        # As root, Claude Code refuses to start when the adapter offers bypassPermissions mode
        # unless the environment says it is a sandbox. The test config sets it; the bridge
        # never does (CONTRACT: nothing that weakens an agent's own checks).
        env["IS_SANDBOX"] = "1"
    # The adapter's SDK bundles an older Claude Code; run the pinned native one instead.
    native = package_path("@anthropic-ai", "claude-code", "bin", "claude.exe")
    if native.exists():
        env["CLAUDE_CODE_EXECUTABLE"] = str(native)
    return [], env


# codex-acp 2.x (`@agentclientprotocol/codex-acp`, on Codex's app-server) renamed the
# presets and embeds a newer Codex; 0.16 (`@zed-industries/codex-acp`) is the oldest tested.
CODEX_ACP_2 = (installed_major("codex-acp") or 0) >= 2


def _codex_setup(home: Path, url: str) -> tuple[list[str], dict[str, str]]:
    codex_home = home / "codex-home"
    codex_home.mkdir(parents=True, exist_ok=True)
    env = {"CODEX_HOME": str(codex_home), "FAKE_API_KEY": "fake"}
    if CODEX_ACP_2:
        # Its Codex reads the `codex` CLI's catalog format: the fake models, offline.
        resp.write_codex_home(codex_home, url)
        # Its default preset `agent` has the model itself review each approval (a guardian
        # assessment the fake model does not write): start in the preset that asks the client.
        env["INITIAL_AGENT_MODE"] = "workspace-write"
    else:
        # 0.16 embeds an older Codex whose catalog format differs from the `codex` CLI's,
        # so no catalog: an unknown slug gets fallback metadata (MCP tools then reach the
        # model as a namespace tool instead of being deferred behind tool_search).
        (codex_home / "config.toml").write_text(resp.codex_config(url, model="mock-model"))
    if shutil.which("bwrap") is None:
        # codex-acp ships no bwrap; Codex's own package does (notes/offline-agents.md §5).
        resources = package_path(
            "@openai", "codex-linux-x64", "vendor", "x86_64-unknown-linux-musl", "codex-resources"
        )
        env["PATH"] = f"{resources}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    return [], env


def _anthropic_server() -> FakeModelServer:
    return FakeModelServer([AnthropicDialect()])


_call_ids = itertools.count(1)


def _call_id() -> str:
    """A fresh tool call id: agents get confused by a repeated one (Claude Code drops the
    second result)."""
    return f"call_shell_{next(_call_ids)}"


@dataclass(frozen=True)
class Kit:
    name: str  # the bridge's built-in agent name
    cli: str  # the binary in .agents/node_modules/.bin
    server: Callable[[], FakeModelServer]
    setup: Callable[[Path, str], tuple[list[str], dict[str, str]]]
    shell: Callable[[str], ToolUse]
    mcp_tool: Callable[[str], Callable[[list[str]], str]] = gem.pick_mcp
    # A model (config option value) to switch to, and the model name that then reaches the
    # fake server (in the request path for Gemini, in the body for the others).
    model_pick: str = ""
    model_sent: str = ""
    # A mode to switch to with session/set_mode, and whether a shell command then runs
    # without asking.
    mode_pick: str = ""
    mode_runs_shell: bool = False
    # The shell call to use once that mode is on (default: `shell`).
    free_shell: Callable[[str], ToolUse] | None = None
    # MCP servers from session/new come up in the background: early turns may lack them.
    mcp_connects_late: bool = False


KITS: dict[str, Kit] = {
    "gemini": Kit(
        "gemini",
        "gemini",
        gem.gemini_server,
        _gemini_setup,
        lambda cmd: gem.shell_call(cmd, _call_id()),
        model_pick="gemini-2.5-pro",
        model_sent="/models/gemini-2.5-pro:",
        mode_pick="yolo",
        mode_runs_shell=True,
    ),
    "opencode": Kit(
        "opencode",
        "opencode",
        chat.chat_server,
        _opencode_setup,
        lambda cmd: chat.shell_call(cmd, _call_id()),
        model_pick="fake/fake-model-mini",
        model_sent='"model": "fake-model-mini"',
        mode_pick="plan",
    ),
    "qwen": Kit(
        "qwen",
        "qwen",
        chat.chat_server,
        _qwen_setup,
        lambda cmd: ToolUse(
            name="run_shell_command", input={"command": cmd, "is_background": False}, id=_call_id()
        ),
        model_pick="fake-model-mini(openai)",
        model_sent='"model": "fake-model-mini"',
        mode_pick="yolo",
        mode_runs_shell=True,
        mcp_connects_late=True,
    ),
    "claude-acp": Kit(
        "claude-acp",
        "claude-agent-acp",
        _anthropic_server,
        _claude_setup,
        lambda cmd: ToolUse(
            name="Bash", input={"command": cmd, "description": "run it"}, id=f"toolu_{_call_id()}"
        ),
        model_pick="haiku",
        model_sent='"model": "claude-haiku',
        mode_pick="bypassPermissions",
        mode_runs_shell=True,
    ),
    "codex-acp": Kit(
        "codex-acp",
        "codex-acp",
        resp.responses_server,
        _codex_setup,
        lambda cmd: resp.shell_call(cmd, _call_id(), escalate=True),
        # 2.x lists the catalog's fake models; 0.16 its own built-in catalog.
        model_pick="mock-model-mini" if CODEX_ACP_2 else "gpt-5.4-mini",
        model_sent='"model": "mock-model-mini"' if CODEX_ACP_2 else '"model": "gpt-5.4-mini"',
        mode_pick="agent-full-access" if CODEX_ACP_2 else "full-access",
        mode_runs_shell=True,
        # Full access needs no escalation (and an escalation request is refused there).
        free_shell=lambda cmd: resp.shell_call(cmd, _call_id()),
    ),
}


def echo_mcp_server() -> JsonObj:
    """A real stdio MCP server (PyPI `mcp`), in ACP `McpServerStdio` form."""
    return {"name": "echo", "command": sys.executable, "args": [str(ECHO_MCP)], "env": []}


@dataclass
class Rig:
    kit: Kit
    tmp: Path
    fake: FakeModelServer
    workspace: Path
    config: Path
    daemon: DaemonProc | None = None
    seen_pids: dict[int, float] = field(default_factory=dict)
    stderr: bytearray = field(default_factory=bytearray)

    @property
    def client(self) -> AcpClient:
        assert self.daemon is not None
        return self.daemon.client

    @contextlib.asynccontextmanager
    async def running(self, *extra_args: str) -> AsyncIterator[AcpClient]:
        """The daemon as a subprocess over stdio; stdin EOF on exit (it then stops its agents)."""
        args = ["--config", str(self.config), "--state-dir", str(self.tmp / "state"), *extra_args]
        async with daemon_process(args, cwd=self.workspace) as daemon:
            self.daemon = daemon
            try:
                yield daemon.client
            finally:
                self.note_processes()
                self.stderr = daemon.stderr
        self.daemon = None

    async def new_session(self, **params: Any) -> str:
        body: JsonObj = {"cwd": str(self.workspace), "mcpServers": [], **params}
        body.setdefault("_meta", {"bridge": {"agent": self.kit.name}})
        result = await self.client.request("session/new", body)
        self.note_processes()
        return str(result["sessionId"])

    async def prompt(self, sid: str, text: str) -> JsonObj:
        with anyio.fail_after(TURN_TIMEOUT):
            result: JsonObj = await self.client.prompt(sid, text)
        self.note_processes()
        return result

    def note_processes(self) -> None:
        """Remember every process below the daemon (pid → create time), to check later that
        none of them outlived its session or the daemon."""
        if self.daemon is None or self.daemon.process.returncode is not None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.daemon.process.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.seen_pids.setdefault(child.pid, child.create_time())

    def survivors(self, pids: dict[int, float] | None = None) -> list[str]:
        """The remembered processes still running (zombies awaiting a reap do not count)."""
        alive: list[str] = []
        for pid, created in (self.seen_pids if pids is None else pids).items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                    alive.append(f"{pid} {' '.join(proc.cmdline())[:200]}")
        return alive

    async def wait_gone(self, pids: dict[int, float] | None = None, within: float = 15.0) -> list[str]:
        """Survivors after up to `within` s: waits on each process's exit (psutil), no polling loop."""
        targets: list[psutil.Process] = []
        for pid, created in (self.seen_pids if pids is None else pids).items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.create_time() == created:
                    targets.append(proc)
        if targets:
            await anyio.to_thread.run_sync(lambda: psutil.wait_procs(targets, timeout=within))
        return self.survivors(pids)


def make_rig(kit: Kit, tmp: Path, fake: FakeModelServer, *, default_agent: bool = False) -> Rig:
    cli = require_cli(kit.cli)
    home = tmp / "home"
    workspace = tmp / "ws"
    workspace.mkdir(parents=True, exist_ok=True)
    env = _offline_env(home)
    args, extra = kit.setup(home, fake.url)
    env.update(extra)
    lines = [f'default_agent = "{kit.name}"'] if default_agent else []
    lines += [
        "cancel_grace = 30.0",
        # The CLIs are given by absolute path and their env is complete: skip the login shell.
        "login_shell_env = false",
        f"[agents.{kit.name}]",
        f"command = {json.dumps(str(cli))}",
        f"args = {json.dumps(args)}",
        "env = { " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in env.items()) + " }",
    ]
    config = tmp / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    return Rig(kit, tmp, fake, workspace, config)


def updates(client: AcpClient, sid: str, kind: str) -> list[JsonObj]:
    return [u for u in client.updates(sid) if u.get("sessionUpdate") == kind]


def request_text(fake: FakeModelServer) -> str:
    """Everything the agents sent the model, as one string (for "did the tool output reach
    the model" checks)."""
    return "\n".join(json.dumps(r.body) for r in fake.requests)
