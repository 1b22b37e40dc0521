"""Which adapter drives which protocol. Written out in full: no plugin magic. Adapters are
imported on first use, so a daemon that only runs ACP agents never loads the others."""

from __future__ import annotations

import importlib

from adapters import static
from bridge.core.adapter import AdapterEnv, AdapterFactory, AgentAdapter, AgentSpec

PROTOCOL_MODULES = {"acp": "adapters.acp", "claude": "adapters.claude", "codex": "adapters.codex"}


def _lazy(module_name: str) -> AdapterFactory:
    def factory(spec: AgentSpec, env: AdapterEnv) -> AgentAdapter:
        module = importlib.import_module(module_name)
        create: AdapterFactory = module.create
        return create(spec, env)

    return factory


def registry() -> dict[str, AdapterFactory]:
    table = {protocol: _lazy(module) for protocol, module in PROTOCOL_MODULES.items()}
    # Native agents' capabilities, readable without importing (or creating) their adapter:
    # `initialize` with such a default agent needs nothing else (bridge/acp/server.py).
    for protocol, caps in static.BY_PROTOCOL.items():
        table[protocol].static_capabilities = caps  # type: ignore[attr-defined]
    return table
