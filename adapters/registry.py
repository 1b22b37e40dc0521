"""Which adapter drives which protocol. Written out in full: no plugin magic. Adapters are
imported on first use, so a daemon that only runs ACP agents never loads the others."""

from __future__ import annotations

import importlib

from bridge.core.adapter import AdapterEnv, AdapterFactory, AgentAdapter, AgentSpec

PROTOCOL_MODULES = {"acp": "adapters.acp", "claude": "adapters.claude", "codex": "adapters.codex"}


def _lazy(module_name: str) -> AdapterFactory:
    def factory(spec: AgentSpec, env: AdapterEnv) -> AgentAdapter:
        module = importlib.import_module(module_name)
        create: AdapterFactory = module.create
        return create(spec, env)

    return factory


def registry() -> dict[str, AdapterFactory]:
    return {protocol: _lazy(module) for protocol, module in PROTOCOL_MODULES.items()}
