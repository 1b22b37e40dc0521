"""`session/load` replay from the CLI's own session file (recorded from a real run)."""

from __future__ import annotations

import json
from pathlib import Path

from adapters.claude import history
from bridge.core import to_acp

from .fixtures import FIXTURES, kinds, text_of, valid

SESSION = FIXTURES / "history.session.jsonl"


def test_replay_shows_the_conversation() -> None:
    updates = [valid(to_acp.update(u)) for u in history.replay(history.read_entries(SESSION))]
    assert text_of(updates, "user_message_chunk") == "make a file and edit it"
    assert text_of(updates, "agent_message_chunk") == "Let me do it.Edited."
    assert text_of(updates, "agent_thought_chunk") == "Done thinking."
    calls = [u for u in updates if u["sessionUpdate"] == "tool_call"]
    assert [c["title"] for c in calls] == ["Write /work/ws/a.txt", "Edit /work/ws/a.txt"]
    done = [u for u in updates if u["sessionUpdate"] == "tool_call_update"]
    assert [d["status"] for d in done] == ["completed", "completed"]
    # The whole-file diff comes from the structured result stored in the file.
    assert done[1]["content"] == [{"type": "diff", "path": "/work/ws/a.txt", "oldText": "one\n", "newText": "two\n"}]
    assert kinds(updates)[0] == "user_message_chunk"


def test_replay_skips_meta_sidechain_and_command_chatter(tmp_path: Path) -> None:
    entries = [
        {"type": "user", "isMeta": True, "message": {"role": "user", "content": "<local-command-caveat>x"}},
        {"type": "user", "uuid": "u1", "message": {"role": "user", "content":
            "<command-name>/context</command-name>\n<command-message>context</command-message>\n"
            "<command-args>full</command-args>"}},
        {"type": "assistant", "isSidechain": True, "message": {"id": "m0", "content": [{"type": "text", "text": "inner"}]}},
        {"type": "user", "message": {"role": "user", "content": "<local-command-stdout>ok</local-command-stdout>"}},
        {"type": "system", "subtype": "local_command", "content": "x"},
    ]
    updates = [valid(to_acp.update(u)) for u in history.replay(entries)]
    assert updates == [{"sessionUpdate": "user_message_chunk", "content": {"type": "text", "text": "/context full"},
                        "messageId": "u1"}]


def test_find_session_by_id(tmp_path: Path) -> None:
    project = tmp_path / "cfg" / "projects" / "-some-where"
    project.mkdir(parents=True)
    (project / "abc.jsonl").write_text(json.dumps({"type": "user"}) + "\nnot json\n")
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "cfg")}
    path = history.find_session(env, "abc")
    assert path == project / "abc.jsonl"
    assert history.read_entries(path) == [{"type": "user"}]
    assert history.find_session(env, "other") is None
    assert history.config_dir({"HOME": "/h"}) == Path("/h/.claude")
