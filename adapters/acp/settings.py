"""Modes and config options, both ways round, for ACP agents that offer only one of them.

ACP v1 has two ways to choose a session's mode and model: the legacy `modes` +
`session/set_mode` (+ `current_mode_update`), and config options (`configOptions` +
`session/set_config_option` + `config_option_update`, categories `mode` / `model` /
`thought_level`). Real agents pick one: Gemini CLI 0.61 offers `modes` plus the removed
unstable `models` / `session/set_model`; OpenCode offers only config options. The bridge
promises both surfaces (CONTRACT: model, mode and thought level as config options, plus
`modes` / `session/set_mode` for older clients), so this fills in the missing side and
routes each client call to the method the agent really has.

Pure: no I/O. `AgentSettings` holds the session's current view; the adapter asks it where
a call goes (`route_*`), feeds it the agent's answers and updates, and emits the extra
updates it returns so both surfaces stay in step.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from bridge.core.config_options import choice, flat_values, mode_state, select
from bridge.wire.types import JsonObj


def _copy(value: Any) -> Any:
    # Config options are JSON from the wire: an orjson round trip copies them ~8x faster than
    # copy.deepcopy (55 µs vs 7 µs for two select options), and this runs on every
    # set_config_option. Anything orjson cannot encode falls back to deepcopy.
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:
        return copy.deepcopy(value)


MODE_ID = "mode"
MODEL_ID = "model"


class AgentSettings:
    def __init__(self, modes: Any, config_options: Any, models: Any) -> None:
        self.modes: JsonObj | None = _copy(modes) if isinstance(modes, dict) else None
        agent_options = config_options if isinstance(config_options, list) else None
        self.options: list[JsonObj] | None = _copy(agent_options)
        # Config options the bridge made up (id → agent method that sets them).
        self.synthetic: dict[str, str] = {}
        # Set when `modes` were made up from the agent's mode config option (its id).
        self.modes_from: str | None = None

        categories = {o.get("category") for o in self.options or [] if isinstance(o, dict)}
        extra: list[JsonObj] = []
        if self.modes is not None and "mode" not in categories and self._free_id(MODE_ID):
            choices = [
                choice(m.get("id"), m.get("name"), m.get("description"))
                for m in self.modes.get("availableModes") or []
                if isinstance(m, dict) and isinstance(m.get("id"), str)
            ]
            if choices:
                extra.append(select(MODE_ID, "Mode", "mode", self.modes.get("currentModeId"), choices))
                self.synthetic[MODE_ID] = "session/set_mode"
        if isinstance(models, dict) and "model" not in categories and self._free_id(MODEL_ID):
            choices = [
                choice(m.get("modelId"), m.get("name"), m.get("description"))
                for m in models.get("availableModels") or []
                if isinstance(m, dict) and isinstance(m.get("modelId"), str)
            ]
            if choices:
                extra.append(select(MODEL_ID, "Model", "model", models.get("currentModelId"), choices))
                self.synthetic[MODEL_ID] = "session/set_model"
        if extra:
            self.options = [*(self.options or []), *extra]

        if self.modes is None:
            mode_option = self._option_of("mode")
            if mode_option is not None and mode_option.get("type", "select") == "select":
                available = [
                    (c["value"], c.get("name", c["value"]), c.get("description"))
                    for c in flat_values(mode_option)
                ]
                if available:
                    self.modes = mode_state(mode_option.get("currentValue"), available)
                    self.modes_from = str(mode_option.get("id"))

    def _free_id(self, option_id: str) -> bool:
        return all(o.get("id") != option_id for o in self.options or [])

    def _option_of(self, category: str) -> JsonObj | None:
        for option in self.options or []:
            if isinstance(option, dict) and option.get("category") == category:
                return option
        return None

    def _by_id(self, option_id: str) -> JsonObj | None:
        for option in self.options or []:
            if isinstance(option, dict) and option.get("id") == option_id:
                return option
        return None

    # -- where a client call goes ------------------------------------------------------------------
    def route_mode(self, mode_id: str) -> tuple[str, JsonObj]:
        """(agent method, params without sessionId) for the client's `session/set_mode`."""
        if self.modes_from is not None:
            return "session/set_config_option", {"configId": self.modes_from, "value": mode_id}
        return "session/set_mode", {"modeId": mode_id}

    def route_config(self, params: JsonObj) -> tuple[str, JsonObj]:
        """(agent method, params without sessionId) for the client's `session/set_config_option`."""
        config_id = params.get("configId")
        method = self.synthetic.get(config_id) if isinstance(config_id, str) else None
        if method == "session/set_mode":
            return method, {"modeId": params.get("value")}
        if method == "session/set_model":
            return method, {"modelId": params.get("value")}
        return "session/set_config_option", {k: v for k, v in params.items() if k != "sessionId"}

    # -- what the agent said ------------------------------------------------------------------------
    def mode_set(self, mode_id: str) -> None:
        """The agent accepted `session/set_mode`."""
        if self.modes is not None:
            self.modes["currentModeId"] = mode_id
        if MODE_ID in self.synthetic:
            self.set_value(MODE_ID, mode_id)

    def set_value(self, option_id: str, value: Any) -> None:
        option = self._by_id(option_id)
        if option is not None:
            option["currentValue"] = value
        if option_id == MODE_ID and MODE_ID in self.synthetic and self.modes is not None:
            self.modes["currentModeId"] = value
        if self.modes_from is not None and option_id == self.modes_from and self.modes is not None:
            self.modes["currentModeId"] = value

    def config_result(self, result: Any) -> JsonObj:
        """The complete `SetSessionConfigOptionResponse` after a change went through."""
        if isinstance(result, dict) and isinstance(result.get("configOptions"), list):
            self._take_agent_options(result["configOptions"])
            return {**result, "configOptions": _copy(self.options)}
        return {"configOptions": _copy(self.options or [])}

    def _take_agent_options(self, agent_options: list[JsonObj]) -> None:
        kept = [o for o in self.options or [] if o.get("id") in self.synthetic]
        self.options = [*_copy(agent_options), *kept]
        if self.modes_from is not None and self.modes is not None:
            option = self._by_id(self.modes_from)
            if option is not None:
                self.modes["currentModeId"] = option.get("currentValue")

    def observe(self, update: JsonObj) -> list[JsonObj]:
        """Track a mode or config update from the agent. May rewrite `update` in place (a
        `config_option_update` gets the synthetic options appended, since it must carry the
        complete list); returns the updates to emit after it for the other surface."""
        kind = update.get("sessionUpdate")
        if kind == "current_mode_update":
            mode = update.get("currentModeId")
            if self.modes is not None:
                self.modes["currentModeId"] = mode
            if MODE_ID in self.synthetic:
                self.set_value(MODE_ID, mode)
                return [{"sessionUpdate": "config_option_update", "configOptions": _copy(self.options)}]
        elif kind == "config_option_update" and isinstance(update.get("configOptions"), list):
            before = self.modes.get("currentModeId") if self.modes is not None else None
            self._take_agent_options(update["configOptions"])
            if self.synthetic:
                update["configOptions"] = _copy(self.options)
            if self.modes_from is not None and self.modes is not None:
                after = self.modes.get("currentModeId")
                if after != before:
                    return [{"sessionUpdate": "current_mode_update", "currentModeId": after}]
        return []
