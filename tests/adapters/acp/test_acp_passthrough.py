"""The passthrough's own logic, without a real agent: modes <-> config options, capability
intersection and its probe cache, and what the router refuses to forward."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from adapters.acp.adapter import _Router
from adapters.acp.settings import AgentSettings
from bridge.acp.capabilities import BRIDGE_CAPABILITIES, AgentCapabilities, intersect
from bridge.core.adapter import AgentProbe, AgentSpec
from bridge.wire import jsonrpc
from bridge.wire.types import JsonObj
from tests.acp_client import RpcFailure
from tests.acp_schema import check
from tests.conftest import fake_agent_config, in_process

pytestmark = pytest.mark.anyio


# What Gemini CLI 0.61 answers session/new with (trimmed): modes and the unstable models.
GEMINI_MODES = {
    "currentModeId": "default",
    "availableModes": [
        {"id": "default", "name": "Default", "description": "Prompts for approval"},
        {"id": "yolo", "name": "YOLO", "description": "Auto-approves all tools"},
    ],
}
GEMINI_MODELS = {
    "currentModelId": "auto",
    "availableModels": [
        {"modelId": "auto", "name": "Auto"},
        {"modelId": "gemini-2.5-pro", "name": "2.5 Pro"},
    ],
}
# What OpenCode 1.18 answers with: config options only.
OPENCODE_OPTIONS = [
    {
        "id": "model",
        "name": "Model",
        "category": "model",
        "type": "select",
        "currentValue": "fake/a",
        "options": [{"value": "fake/a", "name": "A"}, {"value": "fake/b", "name": "B"}],
    },
    {
        "id": "mode",
        "name": "Session Mode",
        "category": "mode",
        "type": "select",
        "currentValue": "build",
        "options": [
            {"value": "build", "name": "build"},
            {"value": "plan", "name": "plan", "description": "Plan"},
        ],
    },
]


def by_category(options: list[JsonObj] | None, category: str) -> JsonObj:
    return next(o for o in options or [] if o["category"] == category)


# -- modes <-> config options ----------------------------------------------------------------------


def test_modes_and_models_become_config_options() -> None:
    s = AgentSettings(GEMINI_MODES, None, GEMINI_MODELS)
    for opt in s.options or []:
        check("SessionConfigOption", opt)
    mode, model = by_category(s.options, "mode"), by_category(s.options, "model")
    assert mode["currentValue"] == "default" and [c["value"] for c in mode["options"]] == ["default", "yolo"]
    assert model["currentValue"] == "auto" and [c["value"] for c in model["options"]] == [
        "auto",
        "gemini-2.5-pro",
    ]
    assert s.modes == GEMINI_MODES
    # Made-up options go to the methods the agent has.
    assert s.route_config({"sessionId": "x", "configId": "mode", "value": "yolo"}) == (
        "session/set_mode",
        {"modeId": "yolo"},
    )
    assert s.route_config({"sessionId": "x", "configId": "model", "value": "gemini-2.5-pro"}) == (
        "session/set_model",
        {"modelId": "gemini-2.5-pro"},
    )
    assert s.route_mode("yolo") == ("session/set_mode", {"modeId": "yolo"})


def test_agent_mode_update_also_updates_the_made_up_option() -> None:
    s = AgentSettings(GEMINI_MODES, None, GEMINI_MODELS)
    update = {"sessionUpdate": "current_mode_update", "currentModeId": "yolo"}
    [extra] = s.observe(update)
    check("SessionNotification", {"sessionId": "s", "update": extra})
    assert extra["sessionUpdate"] == "config_option_update"
    assert by_category(extra["configOptions"], "mode")["currentValue"] == "yolo"
    assert s.modes is not None and s.modes["currentModeId"] == "yolo"
    # A client's set_mode that went through updates both views too.
    s.mode_set("default")
    assert by_category(s.options, "mode")["currentValue"] == "default"
    assert s.config_result(None)["configOptions"] == s.options


def test_mode_config_option_becomes_modes() -> None:
    s = AgentSettings(None, OPENCODE_OPTIONS, None)
    assert s.options == OPENCODE_OPTIONS and not s.synthetic
    assert s.modes is not None
    check("SessionModeState", s.modes)
    assert s.modes["currentModeId"] == "build"
    assert [m["id"] for m in s.modes["availableModes"]] == ["build", "plan"]
    # Legacy set_mode goes to the agent's mode option; other options pass through.
    assert s.route_mode("plan") == ("session/set_config_option", {"configId": "mode", "value": "plan"})
    assert s.route_config({"sessionId": "x", "configId": "model", "value": "fake/b"}) == (
        "session/set_config_option",
        {"configId": "model", "value": "fake/b"},
    )
    changed = json.loads(json.dumps(OPENCODE_OPTIONS))
    changed[1]["currentValue"] = "plan"
    assert s.config_result({"configOptions": changed})["configOptions"] == changed
    assert s.modes["currentModeId"] == "plan"
    # The agent switching mode by itself: legacy clients hear of it too.
    changed[1]["currentValue"] = "build"
    [extra] = s.observe({"sessionUpdate": "config_option_update", "configOptions": changed})
    assert extra == {"sessionUpdate": "current_mode_update", "currentModeId": "build"}


def test_agent_with_both_surfaces_is_left_alone() -> None:
    modes = {"currentModeId": "build", "availableModes": [{"id": "build", "name": "build"}]}
    s = AgentSettings(modes, OPENCODE_OPTIONS, GEMINI_MODELS)
    assert s.options == OPENCODE_OPTIONS and s.modes == modes
    assert not s.synthetic and s.modes_from is None
    assert s.observe({"sessionUpdate": "current_mode_update", "currentModeId": "build"}) == []


def test_agent_config_update_keeps_the_made_up_options() -> None:
    # Native config options without a mode one, plus legacy modes: the made-up mode option
    # must stay in every complete list the client gets.
    native = [OPENCODE_OPTIONS[0]]
    s = AgentSettings(GEMINI_MODES, native, None)
    assert [o["id"] for o in s.options or []] == ["model", "mode"]
    update = {"sessionUpdate": "config_option_update", "configOptions": json.loads(json.dumps(native))}
    assert s.observe(update) == []
    assert [o["id"] for o in update["configOptions"]] == ["model", "mode"]


# -- capability intersection -----------------------------------------------------------------------

GEMINI_CAPS = {
    "loadSession": True,
    "promptCapabilities": {"image": True, "audio": True, "embeddedContext": True},
    "mcpCapabilities": {"http": True, "sse": True},
}
CODEX_ACP_CAPS = {
    "loadSession": True,
    "promptCapabilities": {"image": True, "audio": False, "embeddedContext": True},
    "mcpCapabilities": {"http": True, "sse": False, "acp": False},
    "sessionCapabilities": {"list": {}, "resume": {}, "close": {}},
    "auth": {"logout": {}},
}
OPENCODE_CAPS = {
    "loadSession": True,
    "mcpCapabilities": {"http": True, "sse": True},
    "promptCapabilities": {"embeddedContext": True, "image": True},
    "sessionCapabilities": {"close": {}, "fork": {}, "list": {}, "resume": {}},
    "_meta": {"vendor": {"x": 1}},
}


@pytest.mark.parametrize("agent", [GEMINI_CAPS, CODEX_ACP_CAPS, OPENCODE_CAPS, {}])
def test_intersection_is_valid_and_never_more_than_either_side(agent: JsonObj) -> None:
    caps = intersect(BRIDGE_CAPABILITIES, agent)
    check("AgentCapabilities", caps)
    for group in ("promptCapabilities", "mcpCapabilities"):
        for key, value in caps[group].items():
            if value:
                assert BRIDGE_CAPABILITIES[group][key] and agent[group][key], (group, key)
    # The catalog's methods are the bridge's own.
    assert {"list", "close", "delete"} <= set(caps["sessionCapabilities"])
    assert "_meta" not in caps


def test_intersection_examples() -> None:
    gemini = intersect(BRIDGE_CAPABILITIES, GEMINI_CAPS)
    assert gemini["loadSession"] is True and "resume" in gemini["sessionCapabilities"]
    assert gemini["promptCapabilities"] == {"image": True, "audio": False, "embeddedContext": True}
    assert "additionalDirectories" not in gemini["sessionCapabilities"]
    codex = intersect(BRIDGE_CAPABILITIES, CODEX_ACP_CAPS)
    assert codex["mcpCapabilities"] == {"http": True, "sse": False}
    assert "fork" not in codex["sessionCapabilities"]
    assert "fork" in intersect(BRIDGE_CAPABILITIES, OPENCODE_CAPS)["sessionCapabilities"]
    # An agent that can neither load nor resume: the bridge cannot reopen its sessions.
    none = intersect(BRIDGE_CAPABILITIES, {"promptCapabilities": {}})
    assert none["loadSession"] is False and "resume" not in none["sessionCapabilities"]
    assert not any(none["promptCapabilities"].values()) and not any(none["mcpCapabilities"].values())
    # Resume alone is enough for load: the bridge replays from its own log.
    resume_only = intersect(BRIDGE_CAPABILITIES, {"sessionCapabilities": {"resume": {}}})
    assert resume_only["loadSession"] is True


async def test_probe_runs_once_per_spec_even_when_asked_concurrently() -> None:
    calls: list[str] = []
    release = anyio.Event()

    async def probe(spec: AgentSpec) -> AgentProbe:
        calls.append(spec.name)
        await release.wait()
        return AgentProbe(1, GEMINI_CAPS, [])

    caps = AgentCapabilities(probe)
    spec = AgentSpec("gemini", "acp", "gemini", ("--acp",))
    results: list[JsonObj] = []
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(lambda: _collect(caps, spec, results))
        await anyio.wait_all_tasks_blocked()
        release.set()
    assert calls == ["gemini"]
    assert results == [intersect(BRIDGE_CAPABILITIES, GEMINI_CAPS)] * 3
    assert await caps.advertised(spec) == results[0] and calls == ["gemini"]
    # Another spec (other env) is another probe; no default agent is none at all.
    other = AgentSpec("gemini", "acp", "gemini", ("--acp",), env={"X": "1"})
    await caps.advertised(other)
    assert calls == ["gemini", "gemini"]
    assert await caps.advertised(None) == BRIDGE_CAPABILITIES and len(calls) == 2


async def _collect(caps: AgentCapabilities, spec: AgentSpec, into: list[JsonObj]) -> None:
    into.append(await caps.advertised(spec))


async def test_failed_probe_falls_back_to_the_bridges_own_and_is_not_retried() -> None:
    calls: list[int] = []

    async def probe(spec: AgentSpec) -> AgentProbe:
        calls.append(1)
        raise OSError("no such agent")

    caps = AgentCapabilities(probe)
    spec = AgentSpec("ghost", "acp", "ghost")
    assert await caps.advertised(spec) == BRIDGE_CAPABILITIES
    assert await caps.advertised(spec) == BRIDGE_CAPABILITIES
    assert calls == [1]


async def test_slow_probe_is_bounded() -> None:
    async def probe(spec: AgentSpec) -> AgentProbe:
        await anyio.sleep_forever()
        raise AssertionError

    caps = AgentCapabilities(probe, budget=0.2)
    with anyio.fail_after(10):
        assert await caps.advertised(AgentSpec("slow", "acp", "slow")) == BRIDGE_CAPABILITIES


async def test_initialize_with_and_without_a_default_agent(tmp_path: Path) -> None:
    """Through the daemon with the fake ACP agent: no default agent → nothing is spawned;
    with one → the intersection with what the agent advertises."""
    agent_caps = {
        "loadSession": False,
        "promptCapabilities": {"image": False, "embeddedContext": True},
        "mcpCapabilities": {"http": True},
        "sessionCapabilities": {"resume": {}, "additionalDirectories": {}},
    }
    config = fake_agent_config(tmp_path, FAKE_ACP_CAPS=json.dumps(agent_caps).replace('"', '\\"'))
    text = config.read_text().replace('default_agent = "fake"\n', "")
    no_default = tmp_path / "no-default.toml"
    no_default.write_text(text)
    async with in_process(tmp_path, no_default) as d:
        probes: list[str] = []
        real = d.bridge.server.agent_capabilities._probe

        async def counting(spec: AgentSpec) -> AgentProbe:
            probes.append(spec.name)
            return await real(spec)

        d.bridge.server.agent_capabilities._probe = counting
        init = await d.client.initialize()
        caps = init["agentCapabilities"]
        # In-process connections are not stdio: the daemon may be shared, so attach is offered.
        assert caps["sessionCapabilities"].pop("attach") == {"roles": ["controller", "observer"]}
        assert caps == BRIDGE_CAPABILITIES and probes == []
    async with in_process(tmp_path / "b", config) as d:
        init = await d.client.initialize()
        caps = init["agentCapabilities"]
        assert caps["loadSession"] is True  # resume + the bridge's log
        assert caps["promptCapabilities"] == {"image": False, "audio": False, "embeddedContext": True}
        assert caps["mcpCapabilities"] == {"http": True, "sse": False}
        assert set(caps["sessionCapabilities"]) == {
            "list",
            "close",
            "delete",
            "resume",
            "additionalDirectories",
            "attach",
        }


# -- what the router will not forward ------------------------------------------------------------


class _Host:
    session_id = "sess_bridge"

    def __init__(self) -> None:
        self.params: list[JsonObj] = []
        self.emitted: list[JsonObj] = []
        self.touched = 0

    def emit_params(self, params: JsonObj) -> None:
        self.params.append(params)

    def emit(self, update: JsonObj) -> None:
        self.emitted.append(update)

    def touch(self) -> None:
        self.touched += 1


async def test_router_drops_an_invalid_usage_update_and_maps_the_session_id() -> None:
    host = _Host()
    router = _Router("claude-acp", host)  # type: ignore[arg-type]
    # claude-agent-acp 0.23 behind a gateway without cache counters: used = NaN → null.
    bad = {"sessionUpdate": "usage_update", "used": None, "size": 1000000}
    good = {"sessionUpdate": "usage_update", "used": 43, "size": 1000000}
    for update in (bad, good):
        params = {"sessionId": "agent-1", "update": dict(update)}
        raw = {"jsonrpc": "2.0", "method": "session/update", "params": params}
        await router.on_notification(jsonrpc.Notification("session/update", params, raw))
    assert host.params == [{"sessionId": "sess_bridge", "update": good}]
    assert host.touched == 1
    for params in host.params:
        check("SessionNotification", params)


# -- MCP servers ------------------------------------------------------------------------------------


async def test_mcp_servers_reach_the_agent_as_given_and_unsupported_kinds_are_refused(tmp_path: Path) -> None:
    caps = {"loadSession": True, "mcpCapabilities": {"http": True, "sse": False}}
    config = fake_agent_config(tmp_path, FAKE_ACP_CAPS=json.dumps(caps).replace('"', '\\"'))
    stdio = {"name": "local", "command": "/bin/true", "args": ["-x"], "env": [{"name": "K", "value": "v"}]}
    http = {"type": "http", "name": "remote", "url": "http://127.0.0.1:9/mcp", "headers": []}
    sse = {"type": "sse", "name": "old", "url": "http://127.0.0.1:9/sse", "headers": []}
    async with in_process(tmp_path, config) as d:
        await d.client.initialize()
        result = await d.client.request("session/new", {"cwd": d.cwd, "mcpServers": [stdio, http]})
        assert result["_meta"]["fake"]["mcpServers"] == [stdio, http]
        with pytest.raises(RpcFailure) as refused:
            await d.client.request("session/new", {"cwd": d.cwd, "mcpServers": [stdio, sse]})
        assert refused.value.code == -32602
        assert "sse" in str(refused.value.message) and "'old'" in str(refused.value.message)


async def test_probe_results_are_kept_on_disk_until_the_agent_changes(tmp_path: Path) -> None:
    """A new daemon answers `initialize` from the file; an upgraded binary is probed again."""
    agent = tmp_path / "agent"
    agent.write_text("#!/bin/sh\n")
    agent.chmod(0o755)
    spec = AgentSpec("mine", "acp", str(agent))
    cache = str(tmp_path / "state" / "agent-capabilities.json")
    calls: list[int] = []

    async def probe(spec: AgentSpec) -> AgentProbe:
        calls.append(1)
        return AgentProbe(1, CODEX_ACP_CAPS, [])

    first = await AgentCapabilities(probe, cache_file=cache).advertised(spec)
    second = await AgentCapabilities(probe, cache_file=cache).advertised(spec)
    assert first == second == intersect(BRIDGE_CAPABILITIES, CODEX_ACP_CAPS) and calls == [1]
    agent.write_text("#!/bin/sh\n# upgraded\n")
    await AgentCapabilities(probe, cache_file=cache).advertised(spec)
    assert calls == [1, 1]
    # A damaged file is no worse than none.
    Path(cache).write_text("{not json")
    assert await AgentCapabilities(probe, cache_file=cache).advertised(spec) == first and len(calls) == 3


async def test_router_mutes_replayed_history_but_not_state_while_resuming() -> None:
    host = _Host()
    router = _Router("gemini", host)  # type: ignore[arg-type]
    router.mute_history = True
    for update in (
        {"sessionUpdate": "user_message_chunk", "content": {"type": "text", "text": "old"}},
        {"sessionUpdate": "tool_call", "toolCallId": "t1", "title": "old"},
        {"sessionUpdate": "available_commands_update", "availableCommands": []},
    ):
        params = {"sessionId": "agent-1", "update": update}
        raw = {"jsonrpc": "2.0", "method": "session/update", "params": params}
        await router.on_notification(jsonrpc.Notification("session/update", params, raw))
    assert [p["update"]["sessionUpdate"] for p in host.params] == ["available_commands_update"]
    assert host.touched == 2
