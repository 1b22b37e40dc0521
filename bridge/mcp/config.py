"""`[mcp_servers.NAME]` (global) and `[agents.AGENT.mcp_servers.NAME]` (one agent's) in the
config: validated at start (a bad entry is exit 2 with one line naming it), turned into the
ACP `McpServer` dicts that `session/new` carries, and merged with a session's own servers in
one place (`ConfiguredServers.merge`) — each adapter's conversion to its agent's native form
then does the rest.

Values may name the daemon's environment as `"${VAR}"`, so that a token stays out of the
file. References are expanded in `env`, `headers`, `url` and `cwd` only: a command's argv is
visible to every local user (`ps`), so a secret never goes there. Every expanded value, and
every `env` / header value, is a secret to the redactor (logs, traces, errors)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from bridge.wire.types import JsonObj

Source = Literal["config", "session"]

TRANSPORTS = ("stdio", "http", "sse")
# `${NAME}`; `$${...}` is a literal `${...}`.
REFERENCE = re.compile(r"\$(\$?)\{([^}]*)\}")
VALID_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A server name becomes part of tool names (`mcp__NAME__tool`) and of TOML/JSON keys.
SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
# How a stdio server with `cwd` is started: every agent's MCP config has command/args/env,
# not all have a working directory. `cd` failing is the server failing to start (status says so).
CWD_SHIM = 'cd "$1" || exit 97; shift; exec "$@"'


@dataclass
class McpServerEntry:
    """One `[mcp_servers.NAME]` table: stdio (`command`, `args`, `env`, `cwd`) or remote
    (`url`, `headers`, `transport`). Validated by `bridge.config.load_config` (its schema,
    with the same fields: `bridge.config_schema.McpServerModel`)."""

    command: str | None = None
    args: list[str] | None = None
    env: dict[str, str] | None = None
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] | None = None
    transport: str | None = None
    # A server may be switched off for one agent: `[agents.X.mcp_servers.NAME] enabled = false`.
    enabled: bool = True

    @property
    def kind(self) -> str:
        if self.command is not None:
            return "stdio"
        return self.transport or "http"


McpServers = dict[str, McpServerEntry]


class ConfigProblem(Exception):
    """A bad entry; the message is one line naming it."""


def check(where: str, entries: Mapping[str, McpServerEntry], environ: Mapping[str, str]) -> None:
    """Raise `ConfigProblem` for the first bad entry (`where`: `mcp_servers` or
    `agents.NAME.mcp_servers`)."""
    for name, entry in entries.items():
        here = f"{where}.{name}"
        if not SERVER_NAME.match(name):
            raise ConfigProblem(f"{here}: a server name may hold only letters, digits, '_' and '-'")
        if not entry.enabled:
            continue
        if entry.command is not None and entry.url is not None:
            raise ConfigProblem(
                f"{here}: has both command and url; a server is stdio (command) or remote (url)"
            )
        if entry.command is None and entry.url is None:
            raise ConfigProblem(f"{here}: needs command (a stdio server) or url (an http or sse server)")
        if entry.transport is not None and entry.transport not in TRANSPORTS:
            raise ConfigProblem(
                f'{here}.transport: {entry.transport!r} is not a transport; use "http" or "sse" with url'
            )
        if entry.command is not None:
            if entry.transport not in (None, "stdio"):
                raise ConfigProblem(f"{here}: transport {entry.transport!r} needs url, not command")
            if entry.headers is not None:
                raise ConfigProblem(f"{here}.headers: headers are for http and sse servers (url)")
            if not entry.command:
                raise ConfigProblem(f"{here}.command: is empty")
        else:
            if entry.transport == "stdio":
                raise ConfigProblem(f'{here}: transport "stdio" needs command, not url')
            for key in ("args", "env", "cwd"):
                if getattr(entry, key) is not None:
                    raise ConfigProblem(f"{here}.{key}: {key} is for stdio servers (command)")
        for key, value in _strings(entry):
            _expand(
                f"{here}.{key}", value, environ, allowed=key.split(".")[0] in ("env", "headers", "url", "cwd")
            )


def _strings(entry: McpServerEntry) -> Iterable[tuple[str, str]]:
    for key in ("command", "url", "cwd"):
        value = getattr(entry, key)
        if value is not None:
            yield key, value
    for i, arg in enumerate(entry.args or []):
        yield f"args.{i}", arg
    for table in ("env", "headers"):
        for k, v in (getattr(entry, table) or {}).items():
            yield f"{table}.{k}", v


def _expand(
    where: str, value: str, environ: Mapping[str, str], *, allowed: bool, found: list[str] | None = None
) -> str:
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(0)[1:]  # `$${X}` → `${X}`
        var = m.group(2)
        if not allowed:
            raise ConfigProblem(
                f"{where}: ${{{var}}} is only expanded in env, headers, url and cwd "
                "(an argument is visible to every local user); pass the secret in env"
            )
        if not VALID_NAME.match(var):
            raise ConfigProblem(f"{where}: ${{{var}}} is not a variable name")
        if var not in environ:
            raise ConfigProblem(f"{where}: ${{{var}}} is not set in the daemon's environment")
        if found is not None:
            found.append(environ[var])
        return environ[var]

    return REFERENCE.sub(one, value)


def to_acp(name: str, entry: McpServerEntry, environ: Mapping[str, str], secrets: list[str]) -> JsonObj:
    """The entry as an ACP `McpServer` (what `session/new` carries), references expanded.
    Expanded values and every env / header value are appended to `secrets`."""

    def x(key: str, value: str) -> str:
        allowed = key.split(".")[0] in ("env", "headers", "url", "cwd")
        return _expand(f"mcp_servers.{name}.{key}", value, environ, allowed=allowed, found=secrets)

    if entry.command is not None:
        env = [{"name": k, "value": x(f"env.{k}", v)} for k, v in (entry.env or {}).items()]
        secrets.extend(e["value"] for e in env)
        command, args = (
            x("command", entry.command),
            [x(f"args.{i}", a) for i, a in enumerate(entry.args or [])],
        )
        if entry.cwd is not None:
            args = ["-c", CWD_SHIM, "mcp-cwd", x("cwd", entry.cwd), command, *args]
            command = "/bin/sh"
        return {"name": name, "command": command, "args": args, "env": env}
    headers = [{"name": k, "value": x(f"headers.{k}", v)} for k, v in (entry.headers or {}).items()]
    for h in headers:
        # `Bearer <token>`: the token may turn up alone.
        secrets.extend((h["value"], h["value"].rsplit(" ", 1)[-1]))
    assert entry.url is not None
    return {"type": entry.kind, "name": name, "url": x("url", entry.url), "headers": headers}


def effective(
    global_entries: Mapping[str, McpServerEntry], agent_entries: Mapping[str, McpServerEntry]
) -> dict[str, McpServerEntry]:
    """One agent's servers: the global ones, replaced (or switched off) by the agent's own."""
    merged = {**global_entries, **agent_entries}
    return {name: entry for name, entry in merged.items() if entry.enabled}


@dataclass(frozen=True)
class ConfiguredServers:
    """Every agent's config-wired servers as ACP dicts, resolved once at start."""

    default: list[JsonObj] = field(default_factory=list)
    by_agent: dict[str, list[JsonObj]] = field(default_factory=dict)
    # Every value to mask in logs and traces (the redactor is told at start).
    secrets: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        global_entries: Mapping[str, McpServerEntry],
        agent_entries: Mapping[str, Mapping[str, McpServerEntry]],
        environ: Mapping[str, str],
    ) -> ConfiguredServers:
        secrets: list[str] = []

        def resolve(entries: Mapping[str, McpServerEntry]) -> list[JsonObj]:
            return [to_acp(name, entry, environ, secrets) for name, entry in entries.items()]

        default = resolve(effective(global_entries, {}))
        by_agent = {
            agent: resolve(effective(global_entries, own)) for agent, own in agent_entries.items() if own
        }
        return cls(default, by_agent, tuple(dict.fromkeys(s for s in secrets if s)))

    def for_agent(self, agent: str) -> list[JsonObj]:
        return self.by_agent.get(agent, self.default)

    def merge(self, agent: str, own: list[JsonObj]) -> tuple[list[JsonObj], frozenset[str]]:
        """The servers a session of `agent` gets: the configured ones, then the session's own
        (`session/new`), which win on a name clash. Also the names that came from the config."""
        taken = {s.get("name") for s in own}
        configured = [dict(s) for s in self.for_agent(agent) if s["name"] not in taken]
        return configured + own, frozenset(s["name"] for s in configured)
