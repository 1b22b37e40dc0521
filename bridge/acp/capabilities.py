"""What `initialize` advertises: only what the bridge *and* the default agent can honour.

Without a default agent the bridge advertises its own capabilities (sessions may pick any
agent; per-session checks refuse what a given agent cannot take) and `initialize` spawns
nothing. With one (`--agent` / `default_agent`), its handshake is probed once per agent
spec (the adapter's `probe()`), cached for the daemon's life, and intersected with ours:
- prompt content kinds and MCP transports: both must support them (content and MCP
  servers are passed to the agent as they are);
- `loadSession` / `resume`: the bridge replays history from its own log, but reopening a
  session after a restart needs the agent's load or resume, so either one suffices;
- list / close / delete come from the bridge's catalog and are always offered;
- `additionalDirectories` and (unstable) `fork` only when the agent has them.
A probe that fails or times out leaves the bridge's own set (the session start then
reports the real error) and is not retried for that spec.

Editors start the daemon per window and wait for `initialize`, and some agents take seconds
to answer their handshake, so successful probes are also kept on disk
(`<state-dir>/agent-capabilities.json`) keyed by the spec and the identity of the resolved
binary (real path, size, mtime): the next daemon answers at once, and an upgraded agent is
probed again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import anyio

from bridge.core.adapter import AgentProbe, AgentSpec
from bridge.process.lookup import locate
from bridge.wire.types import JsonObj

log = logging.getLogger(__name__)

# What the bridge itself honours for every agent.
BRIDGE_CAPABILITIES: JsonObj = {
    "loadSession": True,
    "promptCapabilities": {"image": True, "audio": False, "embeddedContext": True},
    "mcpCapabilities": {"http": True, "sse": True},
    "sessionCapabilities": {
        "list": {},
        "resume": {},
        "close": {},
        "delete": {},
        "additionalDirectories": {},
    },
}

# Upper bound on a probe run for `initialize` (spawn + handshake + stop).
PROBE_BUDGET = 20.0


def _obj(value: Any) -> JsonObj:
    return value if isinstance(value, dict) else {}


def intersect(own: JsonObj, agent: JsonObj) -> JsonObj:
    """The capabilities both `own` (the bridge's) and `agent` (a probe's) support."""
    agent_sessions = _obj(agent.get("sessionCapabilities"))
    own_sessions = _obj(own.get("sessionCapabilities"))

    def agent_has(name: str) -> bool:
        return agent_sessions.get(name) is not None

    reopen = bool(agent.get("loadSession")) or agent_has("resume")
    sessions: JsonObj = {name: {} for name in ("list", "close", "delete") if name in own_sessions}
    if reopen and "resume" in own_sessions:
        sessions["resume"] = {}
    if agent_has("additionalDirectories") and "additionalDirectories" in own_sessions:
        sessions["additionalDirectories"] = {}
    if agent_has("fork"):
        sessions["fork"] = {}

    def both(key: str) -> JsonObj:
        mine, theirs = _obj(own.get(key)), _obj(agent.get(key))
        return {k: bool(v) and bool(theirs.get(k)) for k, v in mine.items() if k != "_meta"}

    result: JsonObj = {
        "loadSession": bool(own.get("loadSession")) and reopen,
        "promptCapabilities": both("promptCapabilities"),
        "mcpCapabilities": both("mcpCapabilities"),
        "sessionCapabilities": sessions,
    }
    # `logout` is forwarded to an agent that has it (native agents: their CLI's logout).
    if _obj(agent.get("auth")).get("logout") is not None:
        result["auth"] = {"logout": {}}
    return result


def _key(spec: AgentSpec) -> Hashable:
    return (spec.name, spec.protocol, spec.command, spec.args, tuple(sorted(spec.env.items())))


def _binary(spec: AgentSpec) -> list[Any] | None:
    """[real path, size, mtime] of the agent's executable, and of every file named by an
    absolute argument (a script run by an interpreter); None when it cannot be found."""
    found = locate(spec.command, {"PATH": spec.env.get("PATH") or os.environ.get("PATH", os.defpath)}).path
    if not found:
        return None
    identity: list[Any] = []
    for name in [found, *(a for a in spec.args if os.path.isabs(a) and os.path.isfile(a))]:
        try:
            real = os.path.realpath(name)
            st = os.stat(real)
        except OSError:
            return None
        identity += [real, st.st_size, st.st_mtime_ns]
    return identity


class _DiskCache:
    """Successful probes in one JSON file; a damaged file is ignored and rewritten."""

    VERSION = 2  # 2: with the agent's authMethods

    def __init__(self, path: str) -> None:
        self.path = path

    @staticmethod
    def _digest(spec: AgentSpec) -> str:
        return hashlib.sha256(json.dumps(_key(spec), sort_keys=True).encode()).hexdigest()[:32]

    def _load(self) -> JsonObj:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != self.VERSION:
            return {}
        agents = data.get("agents")
        return agents if isinstance(agents, dict) else {}

    def get(self, spec: AgentSpec) -> tuple[JsonObj, list[JsonObj]] | None:
        binary = _binary(spec)
        entry = self._load().get(self._digest(spec)) if binary is not None else None
        if isinstance(entry, dict) and entry.get("binary") == binary:
            caps = entry.get("capabilities")
            methods = entry.get("authMethods")
            if isinstance(caps, dict) and isinstance(methods, list):
                return caps, methods
        return None

    def put(self, spec: AgentSpec, caps: JsonObj, methods: list[JsonObj]) -> None:
        binary = _binary(spec)
        if binary is None:
            return
        agents = self._load()
        agents[self._digest(spec)] = {
            "agent": spec.name, "binary": binary, "capabilities": caps, "authMethods": methods,
        }
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"version": self.VERSION, "agents": agents}, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.info("could not keep agent capabilities in %s: %s", self.path, exc)


class AgentCapabilities:
    """The advertised capabilities of each agent spec, probed at most once (concurrent
    callers share the one probe)."""

    def __init__(
        self,
        probe: Callable[[AgentSpec], Awaitable[AgentProbe]],
        budget: float = PROBE_BUDGET,
        cache_file: str | None = None,
    ) -> None:
        self._probe = probe
        self._budget = budget
        self._disk = _DiskCache(cache_file) if cache_file else None
        self._done: dict[Hashable, JsonObj | None] = {}
        self._auth: dict[Hashable, list[JsonObj]] = {}
        self._pending: dict[Hashable, anyio.Event] = {}

    async def of(self, spec: AgentSpec) -> JsonObj | None:
        key = _key(spec)
        while key not in self._done:
            pending = self._pending.get(key)
            if pending is None:
                break
            await pending.wait()
        if key in self._done:
            return self._done[key]
        stored = self._disk.get(spec) if self._disk is not None else None
        if stored is not None:
            self._done[key], self._auth[key] = stored
            return stored[0]
        event = self._pending[key] = anyio.Event()
        try:
            # Not stored when cancelled (e.g. the client went away): the next caller probes.
            caps = self._done[key] = await self._probe_once(spec)
            if caps is not None and self._disk is not None:
                self._disk.put(spec, caps, self._auth.get(key, []))
        finally:
            del self._pending[key]
            event.set()
        return caps

    async def _probe_once(self, spec: AgentSpec) -> JsonObj | None:
        started = anyio.current_time()
        try:
            with anyio.move_on_after(self._budget):
                probe = await self._probe(spec)
                log.info("probed agent %s in %.2f s", spec.name, anyio.current_time() - started)
                self._auth[_key(spec)] = copy.deepcopy(probe.auth_methods)
                return copy.deepcopy(probe.agent_capabilities)
            log.warning("agent %s did not finish its handshake within %g s", spec.name, self._budget)
        except Exception as exc:  # the agent's fault, reported again when a session starts
            log.warning("could not probe agent %s for its capabilities: %s", spec.name, exc)
        return None

    def auth_methods(self, spec: AgentSpec) -> list[JsonObj]:
        """The agent's own `authMethods` from its probe (none before it, or when it failed)."""
        return copy.deepcopy(self._auth.get(_key(spec), []))

    async def advertised(self, spec: AgentSpec | None) -> JsonObj:
        """What `initialize` answers for a daemon whose default agent is `spec`."""
        own = copy.deepcopy(BRIDGE_CAPABILITIES)
        if spec is None:
            return own
        agent = await self.of(spec)
        return own if agent is None else intersect(own, agent)
