"""What every stdio adapter shares: the agent's environment and the spawn arguments."""

from __future__ import annotations

import os

from bridge.core.adapter import AgentSpec
from bridge.process.tree import INSTANCE_ID, MARKER_ENV


def agent_env(spec: AgentSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The daemon's environment plus the agent's configured `env`. The marker lets the
    process sweep find every descendant; nothing here weakens the agent's own checks."""
    env = dict(os.environ)
    env.update(spec.env)
    if extra:
        env.update(extra)
    env[MARKER_ENV] = INSTANCE_ID
    return env
