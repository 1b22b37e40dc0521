"""ACP's unstable surface, on request only.

ACP v1 results carry their stable fields at the root; unstable ones (such as `usage` on a
`session/prompt` result, from the unstable schema) appear there only for a client that
opted in with `initialize` → `clientCapabilities._meta.bridge.unstable: true`. Every client
finds them under the result's `_meta.bridge` as well, so nothing is lost for one that did not
(spec/bridge-extensions.md, "Unstable fields")."""

from __future__ import annotations

from typing import Any

from bridge.wire.types import JsonObj

# The root fields of ACP v1's stable `PromptResponse`.
STABLE_PROMPT_FIELDS = frozenset({"stopReason", "_meta"})


def wants_unstable(client_capabilities: Any) -> bool:
    meta = client_capabilities.get("_meta") if isinstance(client_capabilities, dict) else None
    bridge = meta.get("bridge") if isinstance(meta, dict) else None
    return isinstance(bridge, dict) and bridge.get("unstable") is True


def prompt_result(result: JsonObj, *, unstable: bool) -> JsonObj:
    """The `session/prompt` result as a client sees it: fields outside the stable schema are
    copied into `_meta.bridge` (keeping the agent's own `_meta`), and kept at the root only
    for a client that opted into the unstable surface."""
    extra = {k: v for k, v in result.items() if k not in STABLE_PROMPT_FIELDS}
    if not extra:
        return result
    meta = result.get("_meta")
    meta = meta if isinstance(meta, dict) else {}
    bridge = meta.get("bridge")
    bridge = bridge if isinstance(bridge, dict) else {}
    shaped = dict(result) if unstable else {k: v for k, v in result.items() if k in STABLE_PROMPT_FIELDS}
    shaped["_meta"] = {**meta, "bridge": {**bridge, **extra}}
    return shaped
