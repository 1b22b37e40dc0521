"""The config file (TOML) and the built-in agent table.

Agents are only ever chosen by name from this table: nothing executable comes from the wire.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bridge import timeouts
from bridge.core.adapter import AgentSpec
from bridge.envsetup import agents_bin, agents_prefix, default_data_dir
from bridge.mcp.config import ConfigProblem, McpServerEntry, McpServers
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


@dataclass
class AgentEntry:
    protocol: str | None = None
    command: str | None = None
    args: list[str] | None = None
    env: dict[str, str] = field(default_factory=dict)
    stall_timeout: float | None = None
    # `_bridge/session/shell` for this agent's sessions (None: the global `allow_shell`).
    allow_shell: bool | None = None
    # The client's fs/terminal as MCP tools for Claude Code and Codex (spec/client-tools.md).
    client_tools: bool = True
    # One agent process for all this agent's sessions where the adapter can (Codex):
    # spec/codex-shared-server.md. False: one process per session.
    share_process: bool = True
    # MCP servers for this agent's sessions only (replace global ones of the same name).
    mcp_servers: McpServers = field(default_factory=dict)


@dataclass
class ConfigFile:
    """The validated config (`load_config`); its schema, with the same fields, defaults and
    bounds, is `bridge.config_schema.ConfigModel`."""

    default_agent: str | None = None
    agents: dict[str, AgentEntry] = field(default_factory=dict)
    stall_timeout: float = timeouts.STALL_TIMEOUT
    cancel_grace: float = timeouts.CANCEL_GRACE
    disconnect_grace: float = timeouts.DISCONNECT_GRACE
    handshake_timeout: float = timeouts.HANDSHAKE_TIMEOUT
    trace: str | None = None
    log_level: str | None = None
    # The agents' environment (bridge/envsetup.py): the login shell's additions, then these.
    login_shell_env: bool = True
    env: dict[str, str] = field(default_factory=dict)
    path_prepend: list[str] = field(default_factory=list)
    log_keep_days: int = 7
    # Nothing executable from the wire unless the operator says so (DESIGN.md decision 8):
    # `_bridge/session/shell` runs /bin/sh for any client holding the token.
    allow_shell: bool = False
    # MCP stdio servers in session/new are commands the agent will run (ACP's model).
    mcp_stdio: Literal["allow", "deny"] = "allow"
    # MCP servers every session of every agent gets (bridge/mcp/config.py).
    mcp_servers: McpServers = field(default_factory=dict)
    # Session leases (spec/durability.md): a daemon silent for this long loses its sessions.
    lease_timeout: float = timeouts.LEASE_TIMEOUT
    # `postgresql://user@host:port/db` (or a SQLite file); None: `<state-dir>/sessions.db`.
    store: str | None = None


# The quick check (`_plain`): for each field, a test that holds only for values the schema
# takes as they are. A file it vouches for is built without pydantic (issue 17: ~100 ms of
# start-up); anything else — unknown keys, a coercion, a bound crossed — goes through the
# schema, which gives the same result or the one-line error.
def _str(v: object) -> bool:
    return type(v) is str


def _bool(v: object) -> bool:
    return type(v) is bool


def _strs(v: object) -> bool:
    return type(v) is list and all(type(x) is str for x in v)


def _str_map(v: object) -> bool:
    return type(v) is dict and all(type(x) is str for x in v.values())


def _positive(v: object) -> bool:
    return type(v) is float and v > 0


_MCP_FIELDS = {
    **dict.fromkeys(("command", "cwd", "url", "transport"), _str),
    "args": _strs,
    "env": _str_map,
    "headers": _str_map,
    "enabled": _bool,
}


def _servers(v: object) -> bool:
    return type(v) is dict and all(_plain(e, _MCP_FIELDS) for e in v.values())


_AGENT_FIELDS = {
    "protocol": _str,
    "command": _str,
    "args": _strs,
    "env": _str_map,
    "stall_timeout": _positive,
    "allow_shell": _bool,
    "client_tools": _bool,
    "share_process": _bool,
    "mcp_servers": _servers,
}
_CONFIG_FIELDS = {
    **dict.fromkeys(("default_agent", "trace", "log_level", "store"), _str),
    "agents": lambda v: type(v) is dict and all(_plain(e, _AGENT_FIELDS) for e in v.values()),
    **dict.fromkeys(("stall_timeout", "cancel_grace", "handshake_timeout", "lease_timeout"), _positive),
    "disconnect_grace": lambda v: type(v) is float and v >= 0,
    "login_shell_env": _bool,
    "allow_shell": _bool,
    "env": _str_map,
    "path_prepend": _strs,
    "log_keep_days": lambda v: type(v) is int and v >= 1,
    "mcp_stdio": lambda v: v in ("allow", "deny") and type(v) is str,
    "mcp_servers": _servers,
}


def _plain(raw: object, fields: Mapping[str, Callable[[object], bool]]) -> bool:
    return type(raw) is dict and all(k in fields and fields[k](v) for k, v in raw.items())


def _build(data: Mapping[str, Any]) -> ConfigFile:
    """A ConfigFile from checked data (a `_plain` file, or the schema's `model_dump()`)."""

    def servers(entries: Mapping[str, Any]) -> McpServers:
        return {name: McpServerEntry(**e) for name, e in entries.items()}

    agents = {
        name: AgentEntry(**{**a, "mcp_servers": servers(a.get("mcp_servers", {}))})
        for name, a in data.get("agents", {}).items()
    }
    return ConfigFile(**{**data, "agents": agents, "mcp_servers": servers(data.get("mcp_servers", {}))})


def _validate(raw: dict[str, Any], path: str) -> ConfigFile:
    if _plain(raw, _CONFIG_FIELDS):
        return _build(raw)
    from pydantic import ValidationError

    from bridge.config_schema import ConfigModel

    try:
        model = ConfigModel.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"config file {path}: {where}: {err['msg']}") from None
    return _build(model.model_dump())


@dataclass(frozen=True)
class Policy:
    """What the config lets clients run through the daemon (read by the ACP handlers)."""

    allow_shell: bool = False
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
    cfg = _validate(raw, path)
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
            share_process=entry.share_process,
        )
    return table
