"""A session handle's config options: model, mode, thought level and the rest, read from
what the agent reports and set by id, category or a choice's name (part of `Session`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bridge.client.channel import Daemon
from bridge.client.errors import ClientError, NotSupported
from bridge.client.updates import ConfigOption, Modes, parse_config_options
from bridge.wire.types import JsonObj


class InvalidValue(ClientError, ValueError):
    """A config value the option does not offer."""


class ConfigOptions:
    """Mixed into `Session` (bridge/client/session.py), which provides these."""

    id: str
    channel: Daemon[Any]
    config_options: list[ConfigOption]
    modes: Modes | None

    if TYPE_CHECKING:  # provided by the class this is mixed into

        async def ensure_open(self) -> None: ...

    async def get_config_options(self) -> list[ConfigOption]:
        await self.ensure_open()
        return list(self.config_options)

    async def get_modes(self) -> Modes | None:
        await self.ensure_open()
        return self.modes

    def config_option(self, category_or_id: str) -> ConfigOption | None:
        """The option with this id, else the first with this category."""
        for opt in self.config_options:
            if opt.id == category_or_id:
                return opt
        return next((o for o in self.config_options if o.category == category_or_id), None)

    async def set_config_option(self, option_id: str, value: str | bool) -> list[ConfigOption]:
        """Set any config option by id (`session/set_config_option`); the value may be given
        as a choice's value or its name. Returns the complete, updated list."""
        await self.ensure_open()
        opt = next((o for o in self.config_options if o.id == option_id), None)
        params: JsonObj = {"sessionId": self.id, "configId": option_id}
        if isinstance(value, bool):
            params.update(type="boolean", value=value)
        else:
            params["value"] = _match_value(opt, value) if opt is not None else value
        result = await self.channel.request("session/set_config_option", params)
        if isinstance(result, dict) and "configOptions" in result:
            self.config_options = parse_config_options(result["configOptions"])
        return list(self.config_options)

    async def _set_category(self, category: str, value: str) -> None:
        await self.ensure_open()
        opt = next((o for o in self.config_options if o.category == category), None)
        if opt is None:
            offered = sorted({o.category or o.id for o in self.config_options})
            raise NotSupported(
                f"the agent offers no {category} option"
                + (f" (its options: {', '.join(offered)})" if offered else " (it reports no config options)")
            )
        await self.set_config_option(opt.id, value)

    async def set_model(self, model: str) -> None:
        await self._set_category("model", model)

    async def set_thought_level(self, level: str) -> None:
        await self._set_category("thought_level", level)

    async def set_mode(self, mode: str) -> None:
        """The "mode" config option; `session/set_mode` for agents that only have modes."""
        await self.ensure_open()
        if any(o.category == "mode" for o in self.config_options) or self.modes is None:
            await self._set_category("mode", mode)
            return
        ids = {m.id: m.id for m in self.modes.available_modes}
        ids.update({m.name.lower(): m.id for m in self.modes.available_modes})
        mode_id = ids.get(mode) or ids.get(mode.lower())
        if mode_id is None:
            raise InvalidValue(
                f"no mode {mode!r}; modes: {', '.join(m.id for m in self.modes.available_modes)}"
            )
        await self.channel.request("session/set_mode", {"sessionId": self.id, "modeId": mode_id})
        self.modes.current_mode_id = mode_id

    async def configure(
        self,
        *,
        model: str | None = None,
        mode: str | None = None,
        thought_level: str | None = None,
        options: Mapping[str, str | bool] | None = None,
    ) -> None:
        """Set several at once (each a separate request, in this order)."""
        if mode is not None:
            await self.set_mode(mode)
        if model is not None:
            await self.set_model(model)
        if thought_level is not None:
            await self.set_thought_level(thought_level)
        for option_id, value in (options or {}).items():
            await self.set_config_option(option_id, value)


def _match_value(opt: ConfigOption, value: str) -> str:
    choices = opt.choices()
    if not choices or any(c.value == value for c in choices):
        return value
    lowered = value.lower()
    for c in choices:
        if c.value.lower() == lowered or c.name.lower() == lowered:
            return c.value
    raise InvalidValue(
        f"{opt.name} ({opt.id}) has no value {value!r}; choices: {', '.join(c.value for c in choices)}"
    )
