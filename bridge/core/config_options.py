"""Building ACP config options and mode lists: the one builder every adapter uses (Claude's
settings, Codex's settings, the ACP passthrough's synthesized options). Pure.

ACP v1 lets a session expose its mode, model and thought level as `select` config options
(`configOptions`, `session/set_config_option`, categories `mode` / `model` /
`thought_level`), and its modes the legacy way too (`modes`: `currentModeId` +
`availableModes`). What each adapter offers differs; their shape does not, so it is made here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from bridge.wire.types import JsonObj


def select(
    option_id: str,
    name: str,
    category: str,
    current: Any,
    choices: list[JsonObj],
    *,
    description: str | None = None,
) -> JsonObj:
    """A `select` config option (`SessionConfigOption`); `choices` from `choice`."""
    out: JsonObj = {"id": option_id, "name": name}
    if description is not None:
        out["description"] = description
    out.update(category=category, type="select", currentValue=current, options=choices)
    return out


def choice(value: Any, name: Any = None, description: Any = None) -> JsonObj:
    """One value of a select option. A name that is not a string shows the value; a
    description that is not a string is left out (the schema wants a string or nothing)."""
    out: JsonObj = {"value": value, "name": name if isinstance(name, str) else str(value)}
    if isinstance(description, str):
        out["description"] = description
    return out


def mode_state(current: Any, available: Iterable[tuple[Any, Any, Any]]) -> JsonObj:
    """A session's modes (`SessionModeState`) from (id, name, description) triples; a name
    that is not a string shows the id, a description that is not a string is left out."""
    listed: list[JsonObj] = []
    for mode_id, name, description in available:
        mode: JsonObj = {"id": mode_id, "name": name if isinstance(name, str) else str(mode_id)}
        if isinstance(description, str):
            mode["description"] = description
        listed.append(mode)
    return {"currentModeId": current, "availableModes": listed}


def flat_values(option: JsonObj) -> list[JsonObj]:
    """The choices of a select option, flattening groups (`SessionConfigSelectGroup`)."""
    out: list[JsonObj] = []
    for entry in option.get("options") or []:
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("options"), list):
            out.extend(e for e in entry["options"] if isinstance(e, dict))
        elif "value" in entry:
            out.append(entry)
    return out
