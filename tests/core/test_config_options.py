"""The one config-option builder (bridge/core/config_options.py) the three adapters use:
its options and mode lists validate against the ACP v1 schema, in one field order."""

from __future__ import annotations

from adapters.acp.settings import AgentSettings
from adapters.claude.options import ClaudeConfig
from adapters.codex.options import Settings
from bridge.core.config_options import choice, flat_values, mode_state, select
from tests.acp_schema import check


def test_a_select_option() -> None:
    plain = select("model", "Model", "model", "a", [choice("a", "A"), choice("b")])
    assert list(plain) == ["id", "name", "category", "type", "currentValue", "options"]
    assert plain["options"] == [{"value": "a", "name": "A"}, {"value": "b", "name": "b"}]
    described = select("mode", "Mode", "mode", "x", [choice("x", "X", "does x")], description="Which")
    assert list(described) == ["id", "name", "description", "category", "type", "currentValue", "options"]
    for option in (plain, described):
        check("SessionConfigOption", option)


def test_choices_keep_only_string_names_and_descriptions() -> None:
    assert choice("v", None, None) == {"value": "v", "name": "v"}
    assert choice(3, 4, 5) == {"value": 3, "name": "3"}
    assert choice("v", "V", "") == {"value": "v", "name": "V", "description": ""}


def test_mode_state() -> None:
    state = mode_state("plan", [("default", "Default", "Ask"), ("plan", None, None)])
    assert state == {
        "currentModeId": "plan",
        "availableModes": [
            {"id": "default", "name": "Default", "description": "Ask"},
            {"id": "plan", "name": "plan"},
        ],
    }
    check("SessionModeState", state)


def test_flat_values_opens_groups() -> None:
    option = {
        "options": [
            {"value": "a", "name": "A"},
            {"group": "g", "name": "G", "options": [{"value": "b", "name": "B"}, "junk"]},
            "junk",
            {"name": "no value"},
        ]
    }
    assert [c["value"] for c in flat_values(option)] == ["a", "b"]


def test_the_three_adapters_build_with_it() -> None:
    """Each adapter's options, as it offers them, are valid ACP config options."""
    claude = ClaudeConfig(models=[{"value": "default", "displayName": "Default", "description": "Best"}])
    codex = Settings(
        model="m",
        effort=None,
        approval="on-request",
        sandbox={"type": "readOnly"},
        models=[{"id": "m", "displayName": "M", "supportedReasoningEfforts": [{"reasoningEffort": "low"}]}],
    )
    acp = AgentSettings(
        {"currentModeId": "a", "availableModes": [{"id": "a", "name": "A"}]},
        None,
        {"currentModelId": "x", "availableModels": [{"modelId": "x", "name": "X"}]},
    )
    built = [*claude.config_options(), *codex.config_options(), *(acp.options or [])]
    assert [o["id"] for o in built] == ["mode", "model", "mode", "model", "thought_level", "mode", "model"]
    for option in built:
        check("SessionConfigOption", option)
    for state in (claude.modes_state(), codex.modes(), acp.modes):
        check("SessionModeState", state)
