"""What every stdio adapter shares: the agent's environment and the spawn arguments."""

from __future__ import annotations

from bridge.core.adapter import AgentSpec
from bridge.process import environment


def agent_env(spec: AgentSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The daemon's environment plus the agent's configured `env` and the instance marker
    (`bridge.process.environment`); nothing here weakens the agent's own checks."""
    return environment.agent_env(spec.env, extra)
