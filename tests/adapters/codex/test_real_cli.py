"""The Codex adapter against the real, pinned `codex app-server` and a fake Responses server."""

from __future__ import annotations

import pytest

from tests.adapters.codex.support import Codex, Host, option, prompt, text_of, validate
from tests.fakes.model_server import FakeModelServer, Reply

pytestmark = pytest.mark.anyio


async def test_text_answer(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="Hello from the fake model", chunks=3))
    host = Host()
    async with codex.session(host) as session:
        setup = session.setup
        assert setup.agent_session_id
        validate("SessionModeState", setup.modes)
        for config_option in setup.config_options or []:
            validate("SessionConfigOption", config_option)
        assert [o["id"] for o in setup.config_options or []] == ["mode", "model", "thought_level"]
        assert {o["value"] for o in option(session, "model")["options"]} == {"mock-model", "mock-model-mini"}
        result = await session.prompt(prompt("say hello"))
    validate("PromptResponse", result, unstable=True)
    assert result["stopReason"] == "end_turn"
    assert result["usage"]["totalTokens"] > 0
    assert text_of(host.updates) == "Hello from the fake model"
    assert len(host.of("agent_message_chunk")) == 3
    assert host.of("usage_update")[-1]["size"] > 0
    assert fake.requests[-1].body["model"] == "mock-model"
