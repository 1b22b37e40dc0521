"""Codex driven natively through `codex app-server` (`protocol = "codex"`)."""

from __future__ import annotations

from adapters.codex.adapter import CodexAdapter
from bridge.core.adapter import AdapterEnv, AgentSpec


def create(spec: AgentSpec, env: AdapterEnv) -> CodexAdapter:
    return CodexAdapter(spec, env)


__all__ = ["CodexAdapter", "create"]
