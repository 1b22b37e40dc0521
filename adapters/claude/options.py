"""A Claude session's settings as ACP config options: mode, model, thought level (pure).

Built from what the CLI itself reports: the models (and each model's effort levels) come
from its `initialize` answer, the starting values from `get_settings` (which merges the
user's own settings files), so the bridge offers exactly what this CLI, with this user's
configuration, accepts. Changing a value is the adapter's job (control requests); this
module validates the choice and renders the option list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from adapters.claude.jsonutil import obj
from bridge.core.config_options import choice, mode_state, select
from bridge.errors import invalid_params
from bridge.wire.types import JsonObj

MODES: dict[str, tuple[str, str]] = {
    "default": ("Default", "Ask before running commands and editing files"),
    "acceptEdits": ("Accept edits", "Edit files without asking; ask before commands"),
    "plan": ("Plan", "Read and plan only; no edits, no commands"),
    "dontAsk": ("Don't ask", "Never ask: anything not pre-approved by your rules is denied"),
    "bypassPermissions": ("Bypass permissions", "Run everything without asking"),
    "auto": ("Auto", "Let Claude decide what needs approval"),
}
BASE_MODES = ("default", "acceptEdits", "plan", "dontAsk")


@dataclass
class ClaudeConfig:
    models: list[JsonObj] = field(default_factory=list)
    model: str = "default"
    modes: list[str] = field(default_factory=lambda: list(BASE_MODES))
    mode: str = "default"
    effort: str | None = None

    @classmethod
    def from_cli(cls, init: JsonObj, settings: JsonObj, *, bypass: bool, mode: str | None,
                 model: str | None, effort: str | None) -> ClaudeConfig:
        """`init`/`settings`: the CLI's answers to `initialize` and `get_settings`. `mode`,
        `model`, `effort`: what the adapter passed on the command line, if anything."""
        models = [m for m in init.get("models") or [] if isinstance(m, dict) and isinstance(m.get("value"), str)]
        effective, applied = obj(settings.get("effective")), obj(settings.get("applied"))
        perms = obj(effective.get("permissions"))
        cfg = cls(models=models, modes=[*BASE_MODES, *(["bypassPermissions"] if bypass else [])])
        cfg.mode = mode or _str(perms.get("defaultMode")) or "default"
        cfg.observe_mode(cfg.mode)
        cfg.model = cfg._match_model(model or _str(effective.get("model")), _str(applied.get("model")))
        levels = cfg.efforts()
        chosen = effort or _str(applied.get("effort"))
        cfg.effort = chosen if chosen in levels else (levels[len(levels) // 2] if levels else None)
        return cfg

    # -- reading ---------------------------------------------------------------------------
    def _match_model(self, chosen: str | None, resolved: str | None) -> str:
        values = [m["value"] for m in self.models]
        if chosen and chosen in values:
            return chosen
        default = next((m for m in self.models if m["value"] == "default"), None)
        if chosen is None and default is not None and default.get("resolvedModel") in (None, resolved):
            return "default"
        for m in self.models:
            if resolved and m.get("resolvedModel") == resolved:
                return str(m["value"])
        # A model the CLI does not list (custom gateway id, env override): offer it as is.
        name = chosen or resolved or "default"
        self.models.append({"value": name, "displayName": name})
        return name

    def current_model(self) -> JsonObj:
        return next((m for m in self.models if m["value"] == self.model), {"value": self.model})

    def efforts(self) -> list[str]:
        m = self.current_model()
        levels = m.get("supportedEffortLevels") if m.get("supportsEffort") else None
        return [lv for lv in levels if isinstance(lv, str)] if isinstance(levels, list) else []

    def observe_mode(self, mode: str) -> bool:
        """The CLI reports `mode` (init/status lines). True when that is a change."""
        if mode not in self.modes:
            self.modes.append(mode)  # e.g. "auto" from the user's settings: show what is real
        changed = mode != self.mode
        self.mode = mode
        return changed

    def observe_model(self, resolved: str) -> bool:
        """The CLI reports its resolved model (init lines, e.g. after a `/model` prompt)."""
        current = self.current_model()
        if current.get("resolvedModel") in (None, resolved) or self.model == resolved:
            return False
        match = next((m for m in self.models if m.get("resolvedModel") == resolved), None)
        if match is None:
            return False
        self.model = str(match["value"])
        return True

    # -- validating a client's choice -------------------------------------------------------
    def check(self, config_id: str, value: Any) -> str:
        allowed = {"mode": self.modes, "model": [m["value"] for m in self.models],
                   "thought_level": self.efforts()}.get(config_id)
        if allowed is None:
            raise invalid_params(f"unknown config option {config_id!r}", "configId")
        if not isinstance(value, str) or value not in allowed:
            raise invalid_params(f"{value!r} is not a valid {config_id}; choose one of {allowed}", "value")
        return value

    # -- rendering ---------------------------------------------------------------------------
    def modes_state(self) -> JsonObj:
        return mode_state(self.mode, ((m, *MODES.get(m, (m, ""))) for m in self.modes))

    def config_options(self) -> list[JsonObj]:
        opts = [
            select("mode", "Mode", "mode", self.mode, [choice(m, *MODES.get(m, (m, ""))) for m in self.modes]),
            select("model", "Model", "model", self.model,
                   [choice(m["value"], str(m.get("displayName") or m["value"]), m.get("description"))
                    for m in self.models]),
        ]
        levels = self.efforts()
        if levels and self.effort:
            opts.append(select("thought_level", "Thinking effort", "thought_level", self.effort,
                               [choice(lv, lv.capitalize()) for lv in levels]))
        return opts

    def refit_effort(self) -> None:
        """After a model change: keep the effort if the new model has it, else its middle level."""
        levels = self.efforts()
        if self.effort not in levels:
            self.effort = levels[len(levels) // 2] if levels else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
