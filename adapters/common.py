"""What every stdio adapter shares: the agent's environment and the spawn arguments, and
which of ACP's unstable updates the client asked for."""

from __future__ import annotations

from typing import Any

from bridge.core.adapter import AgentSpec
from bridge.process import environment


def agent_env(spec: AgentSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The daemon's environment plus the agent's configured `env` and the instance marker
    (`bridge.process.environment`); nothing here weakens the agent's own checks."""
    return environment.agent_env(spec.env, extra)


def wants_compaction(client_capabilities: Any) -> bool:
    """ACP's unstable `clientCapabilities.session.compaction` (`{}` advertises it): only such
    a client gets `compaction_update` updates (the schema says agents MUST NOT send them
    otherwise)."""
    session = client_capabilities.get("session") if isinstance(client_capabilities, dict) else None
    return isinstance(session, dict) and isinstance(session.get("compaction"), dict)
