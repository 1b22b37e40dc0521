"""The bridge's per-session extensions through the client: info, metrics, title/archive,
shell, files and artifacts, the durable log (pages, messages, todos), slash commands."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from bridge.client import (
    AvailableCommandsUpdate,
    InvalidParams,
    MethodNotFound,
    NotSupported,
    RequestError,
    Session,
    SessionNotFound,
)
from tests.client.support import client_config, spawned

pytestmark = pytest.mark.anyio


async def test_info_metrics_update_and_archive(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            await session.send("rich /x")
            await session.send("permission", permissions="allow_once")
            metrics = await session.metrics()
            await session.update(title="Renamed")
            await session.archive()
            info = await session.info()
            archived = await client.list_sessions(include_archived=False)
            await session.archive(False)
            unarchived = await client.list_sessions(include_archived=False)
    assert metrics.turns == 2 and metrics.tool_calls == 2 and metrics.tool_usage == {"edit": 2}
    assert metrics.tokens.input == 100 and metrics.tokens.total == 150 and metrics.cost == 0.25
    assert metrics.total_cost is not None and (metrics.total_cost.amount, metrics.total_cost.currency) == (0.25, "USD")
    assert metrics.tokens.thought == 0
    assert metrics.process is not None and metrics.process.pid > 0 and metrics.process.rss_bytes > 0
    assert info.title == "Renamed" and info.archived and info.status == "idle"
    assert info.created_at.endswith("Z") and info.agent == "fake" and info.id == session.id
    assert archived == [] and [s.id for s in unarchived] == [session.id]


async def test_shell_is_off_by_default(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            with pytest.raises(MethodNotFound, match="allow_shell = true"):
                await session.shell("true")


async def test_shell_runs_in_the_session_cwd(tmp_path: Path) -> None:
    # Another file: `spawned` writes config.toml afresh.
    config = client_config(tmp_path, "shell.toml")
    config.write_text("allow_shell = true\n" + config.read_text())
    async with spawned(tmp_path, config=config) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            r = await session.shell("pwd; echo err >&2; exit 4")
            sub = tmp_path / "sub"
            sub.mkdir()
            there = await session.shell("pwd", cwd=str(sub))
            with pytest.raises(RequestError, match="timed out"):
                await session.shell("sleep 30", timeout=0.3)
    assert (r.stdout, r.stderr, r.exit_code) == (f"{tmp_path}\n", "err\n", 4)
    assert there.stdout == f"{sub}\n"


async def test_read_file_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("héllo\n")
    (tmp_path / "b.bin").write_bytes(bytes(range(256)) * 3)
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            assert await session.read_file("a.txt") == "héllo\n"
            assert await session.read_file(str(tmp_path / "a.txt")) == "héllo\n"
            assert await session.read_bytes("b.bin") == bytes(range(256)) * 3
            with pytest.raises(InvalidParams, match="no such file"):
                await session.read_file("missing.txt")
            with pytest.raises(InvalidParams, match="is a directory"):
                await session.read_bytes(".")
            with pytest.raises(InvalidParams, match="outside the session"):
                await session.read_bytes("/etc/hostname")
            (tmp_path / "big.bin").write_bytes(b"x" * (4 * 1024 * 1024 + 1))
            with pytest.raises(NotSupported, match="larger than"):
                await session.read_bytes("big.bin")


async def test_artifacts_from_resource_links_and_embedded_resources(tmp_path: Path) -> None:
    report = tmp_path / "report.txt"
    report.write_text("the report\n")
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            await session.send(f"rich {report}")
            found = {a.key: a for a in await session.artifacts()}
            assert set(found) == {"report.txt", "summary.md"}
            assert found["summary.md"].mime_type == "text/markdown"
            assert await session.get_artifact("report.txt") == "the report\n"
            assert await session.get_artifact_bytes("summary.md") == b"# Summary\n"
            assert await session.get_artifact("mem://summary.md") == "# Summary\n"
            with pytest.raises(NotSupported, match="no artifact"):
                await session.get_artifact("nope")


async def test_events_pages_iteration_messages_and_todos(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            await session.send("echo first")
            await session.send("plan")
            await session.send("stream 30")
            page = await session.events(limit=10)
            assert [e.seq for e in page.items] == list(range(1, 11)) and page.next == 10
            page2 = await client.get_events(session.id, after=page.next, limit=10)
            assert page2.events[0].seq == 11
            everything = [e async for e in session.iter_events()]
            assert [e.seq for e in everything] == list(range(1, len(everything) + 1))
            assert {e.sender for e in everything} >= {"client", "agent"}
            assert "session/new" in [e.method for e in everything[:5]]
            small_pages = [e async for e in client.iter_events(session.id, page_size=7)]
            assert [e.seq for e in small_pages] == [e.seq for e in everything]
            messages = await session.messages()
            todos = await session.todos()
    assert [(m.role, m.text) for m in messages] == [
        ("user", "echo first"),
        ("assistant", "first"),
        ("user", "plan"),
        ("assistant", ""),
        ("user", "stream 30"),
        ("assistant", "".join(f"chunk {i} " for i in range(30))),
    ]
    assert messages[1].stop_reason == "end_turn" and messages[1].message_id == "m1"
    assert [(t.content, t.status) for t in todos] == [("step one", "in_progress")]


async def test_messages_keep_tool_calls(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            await session.send("permission", permissions="allow_once")
            (_, answer) = await session.messages()
    assert answer.text == "permission: allow"
    assert [(t.title, t.status) for t in answer.tool_calls] == [("Write marker", "completed")]


async def commands_advertised(session: Session) -> None:
    """The agent sends its commands just after answering session/new: they may still be on
    their way when create_session() returns."""
    if session.available_commands:
        return
    got = anyio.Event()
    unsubscribe = session.on_event(lambda u: got.set() if isinstance(u, AvailableCommandsUpdate) else None)
    await got.wait()
    unsubscribe()


async def test_run_command_summarize_and_revert(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, wire):
        with anyio.fail_after(60):
            session = await client.create_session(cwd=tmp_path)
            await commands_advertised(session)
            assert [c.name for c in session.available_commands] == ["help"]
            r = await session.run_command("help", {"topic": "tests"})
            assert r.text == "you said: /help topic=tests"
            with pytest.raises(NotSupported, match="no /deploy command"):
                await session.run_command("deploy")
            with pytest.raises(NotSupported, match="no /compact command"):
                await session.summarize()
            await session.send("advertise")
            assert [c.name for c in session.available_commands] == ["help", "compact"]
            assert (await session.summarize()).text == "you said: /compact"
            with pytest.raises(NotSupported, match="fork"):
                await session.revert("m1")
    prompts = [m["params"]["prompt"][0]["text"] for m in wire.sent if m.get("method") == "session/prompt"]
    assert prompts == ["/help topic=tests", "advertise", "/compact"]


async def test_unknown_session_everywhere(tmp_path: Path) -> None:
    async with spawned(tmp_path) as (client, _):
        with anyio.fail_after(60):
            ghost = client.session("sess_ghost")
            for call in (ghost.info, ghost.metrics, ghost.todos, lambda: ghost.shell("true"), lambda: ghost.read_file("a")):
                with pytest.raises(SessionNotFound) as err:
                    await call()
                assert err.value.code == -32002
