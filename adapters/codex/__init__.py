"""Codex driven natively through `codex app-server` (`protocol = "codex"`)."""

from __future__ import annotations

from adapters.codex.adapter import CodexAdapter
from bridge.core.adapter import AdapterEnv, AdapterFactory, AgentSpec


def create(spec: AgentSpec, env: AdapterEnv) -> CodexAdapter:
    return CodexAdapter(spec, env)


# Checked by mypy: CodexAdapter implements the AgentAdapter protocol.
_factory: AdapterFactory = create

__all__ = ["CodexAdapter", "create"]
