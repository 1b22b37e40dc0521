"""Claude Code, driven natively through its stream-json protocol (`protocol = "claude"`)."""

from __future__ import annotations

from adapters.claude.adapter import ClaudeAdapter
from bridge.core.adapter import AdapterEnv, AgentSpec


def create(spec: AgentSpec, env: AdapterEnv) -> ClaudeAdapter:
    return ClaudeAdapter(spec, env)


__all__ = ["ClaudeAdapter", "create"]
