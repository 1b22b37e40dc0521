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
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

import anyio

from bridge.core.adapter import AgentProbe, AgentSpec, JsonObj

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

    return {
        "loadSession": bool(own.get("loadSession")) and reopen,
        "promptCapabilities": both("promptCapabilities"),
        "mcpCapabilities": both("mcpCapabilities"),
        "sessionCapabilities": sessions,
    }


def _key(spec: AgentSpec) -> Hashable:
    return (spec.name, spec.protocol, spec.command, spec.args, tuple(sorted(spec.env.items())))


class AgentCapabilities:
    """The advertised capabilities of each agent spec, probed at most once (concurrent
    callers share the one probe)."""

    def __init__(
        self, probe: Callable[[AgentSpec], Awaitable[AgentProbe]], budget: float = PROBE_BUDGET
    ) -> None:
        self._probe = probe
        self._budget = budget
        self._done: dict[Hashable, JsonObj | None] = {}
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
        event = self._pending[key] = anyio.Event()
        try:
            # Not stored when cancelled (e.g. the client went away): the next caller probes.
            self._done[key] = await self._probe_once(spec)
        finally:
            del self._pending[key]
            event.set()
        return self._done[key]

    async def _probe_once(self, spec: AgentSpec) -> JsonObj | None:
        started = anyio.current_time()
        try:
            with anyio.move_on_after(self._budget):
                probe = await self._probe(spec)
                log.info("probed agent %s in %.2f s", spec.name, anyio.current_time() - started)
                return copy.deepcopy(probe.agent_capabilities)
            log.warning("agent %s did not finish its handshake within %g s", spec.name, self._budget)
        except Exception as exc:  # the agent's fault, reported again when a session starts
            log.warning("could not probe agent %s for its capabilities: %s", spec.name, exc)
        return None

    async def advertised(self, spec: AgentSpec | None) -> JsonObj:
        """What `initialize` answers for a daemon whose default agent is `spec`."""
        own = copy.deepcopy(BRIDGE_CAPABILITIES)
        if spec is None:
            return own
        agent = await self.of(spec)
        return own if agent is None else intersect(own, agent)
