"""The config file (TOML) and the built-in agent table.

Agents are only ever chosen by name from this table: nothing executable comes from the wire.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from bridge import timeouts
from bridge.core.adapter import AgentSpec
from bridge.envsetup import agents_bin, agents_prefix, default_data_dir
from bridge.mcp.config import ConfigProblem, McpServers
from bridge.mcp.config import check as check_mcp_servers
from bridge.store import pg_url

__all__ = ["agents_bin", "agents_prefix", "default_data_dir"]

PROTOCOLS = ("acp", "claude", "codex")

BUILTIN_AGENTS: dict[str, AgentSpec] = {
    spec.name: spec
    for spec in (
        AgentSpec("claude", "claude", "claude"),
        AgentSpec("codex", "codex", "codex", ("app-server",)),
        AgentSpec("gemini", "acp", "gemini", ("--acp",)),
        AgentSpec("opencode", "acp", "opencode", ("acp",)),
        AgentSpec("qwen", "acp", "qwen", ("--acp",)),
        AgentSpec("goose", "acp", "goose", ("acp",)),
        # Claude Code connects MCP servers in the background by default, so the first turn
        # may run without the ones given in session/new; blocking makes them ready first.
        AgentSpec("claude-acp", "acp", "claude-agent-acp", env={"MCP_CONNECTION_NONBLOCKING": "0"}),
        AgentSpec("codex-acp", "acp", "codex-acp"),
    )
}

# How each built-in agent is installed (shown by `agent-bridge agents` and the docs). The
# packages and tested versions are in `bridge.agents.PACKAGES`.
INSTALL_HINTS: dict[str, str] = {
    "claude": "agent-bridge install claude (or npm install -g @anthropic-ai/claude-code)",
    "codex": "agent-bridge install codex (or npm install -g @openai/codex)",
    "gemini": "agent-bridge install gemini (or npm install -g @google/gemini-cli)",
    "opencode": "agent-bridge install opencode (or npm install -g opencode-ai)",
    "qwen": "agent-bridge install qwen (or npm install -g @qwen-code/qwen-code)",
    "goose": "see https://block.github.io/goose/ (goose CLI)",
    "claude-acp": "agent-bridge install claude-acp (or npm install -g @agentclientprotocol/claude-agent-acp)",
    "codex-acp": "agent-bridge install codex-acp (or npm install -g @agentclientprotocol/codex-acp)",
}


class ConfigError(Exception):
    """A bad config file; the message is one clear line for stderr."""


class AgentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    protocol: str | None = None
    command: str | None = None
    args: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    stall_timeout: float | None = Field(default=None, gt=0)
    # `_bridge/session/shell` for this agent's sessions (None: the global `allow_shell`).
    allow_shell: StrictBool | None = None
    # The client's fs/terminal as MCP tools for Claude Code and Codex (spec/client-tools.md).
    client_tools: StrictBool = True
    # MCP servers for this agent's sessions only (replace global ones of the same name).
    mcp_servers: McpServers = Field(default_factory=dict)


class ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default_agent: str | None = None
    agents: dict[str, AgentEntry] = Field(default_factory=dict)
    stall_timeout: float = Field(default=timeouts.STALL_TIMEOUT, gt=0)
    cancel_grace: float = Field(default=timeouts.CANCEL_GRACE, gt=0)
    disconnect_grace: float = Field(default=timeouts.DISCONNECT_GRACE, ge=0)
    handshake_timeout: float = Field(default=timeouts.HANDSHAKE_TIMEOUT, gt=0)
    trace: str | None = None
    log_level: str | None = None
    # The agents' environment (bridge/envsetup.py): the login shell's additions, then these.
    login_shell_env: bool = True
    env: dict[str, str] = Field(default_factory=dict)
    path_prepend: list[str] = Field(default_factory=list)
    log_keep_days: int = Field(default=7, ge=1)
    # Nothing executable from the wire unless the operator says so (DESIGN.md decision 8):
    # `_bridge/session/shell` runs /bin/sh for any client holding the token.
    allow_shell: StrictBool = False
    # MCP stdio servers in session/new are commands the agent will run (ACP's model).
    mcp_stdio: Literal["allow", "deny"] = "allow"
    # MCP servers every session of every agent gets (bridge/mcp/config.py).
    mcp_servers: McpServers = Field(default_factory=dict)
    # Session leases (spec/durability.md): a daemon silent for this long loses its sessions.
    lease_timeout: float = Field(default=timeouts.LEASE_TIMEOUT, gt=0)
    # `postgresql://user@host:port/db` (or a SQLite file); None: `<state-dir>/sessions.db`.
    store: str | None = None


@dataclass(frozen=True)
class Policy:
    """What the config lets clients run through the daemon (read by the ACP handlers)."""

    allow_shell: StrictBool = False
    shell_by_agent: dict[str, bool] = field(default_factory=dict)
    mcp_stdio: str = "allow"

    @classmethod
    def of(cls, cfg: ConfigFile) -> Policy:
        by_agent = {name: e.allow_shell for name, e in cfg.agents.items() if e.allow_shell is not None}
        return cls(cfg.allow_shell, by_agent, cfg.mcp_stdio)

    def shell_allowed(self, agent: str) -> bool:
        return self.shell_by_agent.get(agent, self.allow_shell)


def load_config(path: str | None, environ: Mapping[str, str] = os.environ) -> ConfigFile:
    """`environ`: what `${VAR}` references in MCP server entries are checked against."""
    if path is None:
        return ConfigFile()
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    try:
        cfg = ConfigFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"config file {path}: {where}: {err['msg']}") from None
    if cfg.store is not None and (problem := pg_url.check(cfg.store)):
        raise ConfigError(f"config file {path}: store: {problem}")
    for name, entry in cfg.agents.items():
        if entry.protocol is not None and entry.protocol not in PROTOCOLS:
            raise ConfigError(
                f"config file {path}: agents.{name}.protocol: {entry.protocol!r} is not one of {', '.join(PROTOCOLS)}"
            )
        if name not in BUILTIN_AGENTS and (entry.protocol is None or entry.command is None):
            raise ConfigError(f"config file {path}: agents.{name}: a new agent needs protocol and command")
    try:
        check_mcp_servers("mcp_servers", cfg.mcp_servers, environ)
        for name, entry in cfg.agents.items():
            check_mcp_servers(f"agents.{name}.mcp_servers", entry.mcp_servers, environ)
    except ConfigProblem as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    return cfg


def agent_table(cfg: ConfigFile) -> dict[str, AgentSpec]:
    """Built-ins, overridden or extended by the config's `[agents.NAME]` entries."""
    table = dict(BUILTIN_AGENTS)
    for name, entry in cfg.agents.items():
        base = table.get(name)
        table[name] = AgentSpec(
            name=name,
            protocol=entry.protocol or (base.protocol if base else "acp"),
            command=entry.command or (base.command if base else ""),
            args=tuple(entry.args) if entry.args is not None else (base.args if base else ()),
            env={**(dict(base.env) if base else {}), **entry.env},
            stall_timeout=entry.stall_timeout,
            client_tools=entry.client_tools,
        )
    return table


