"""The session inspector on a PostgreSQL store shared by two real daemons: each daemon's
inspector lists both daemons' sessions with their owner, shows another daemon's session log
and follows it live (read from the store), and refuses to act on a session it does not run."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import anyio
import httpx
import pytest

from tests.e2e.inspector_support import logged_in
from tests.e2e.ws_support import ws_client, ws_daemon

pytestmark = pytest.mark.anyio


async def test_the_inspector_shows_another_daemons_sessions_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    env = {"AGENT_BRIDGE_STORE": pg_url}
    # Two listeners of one host on one store: the second brings its own token file.
    token = b_dir / "state" / "ws-token"
    token.parent.mkdir()
    token.write_text(secrets.token_urlsafe(32) + "\n")
    token.chmod(0o600)
    async with (
        ws_daemon(a_dir, env=env) as a,
        ws_daemon(b_dir, "--token-file", str(token), env=env) as b,
        ws_client(a) as c,
        httpx.AsyncClient(timeout=30) as http,
    ):
        await c.acp.initialize()
        sid = await c.acp.new_session(str(a_dir))
        await c.acp.prompt(sid, "stream 3")
        s = await logged_in(b, b_dir, http)
        api = f"{s.base}/inspector/api"
        listed = (await http.get(f"{api}/sessions", headers=s.headers)).json()
        (row,) = [r for r in listed["sessions"] if r["id"] == sid]
        assert row["owner"]["here"] is False and row["owner"]["alive"] is True
        assert row["owner"]["url"] == a.url and row["controllable"] is False
        events = (await http.get(f"{api}/sessions/{sid}/events", headers=s.headers)).json()["events"]
        assert sum("chunk" in json.dumps(e["message"]) for e in events) == 3
        # Following it from daemon b: a turn daemon a runs arrives through the store.
        with anyio.fail_after(60):
            async with http.stream("GET", f"{api}/sessions/{sid}/stream", headers=s.headers) as stream:
                lines = stream.aiter_lines()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(c.acp.prompt, sid, "echo seen-from-b")
                    async for line in lines:
                        if line.startswith("data: ") and "seen-from-b" in line:
                            break
        r = await http.post(f"{api}/sessions/{sid}/cancel", headers=s.write_headers, json={})
        assert r.status_code == 409 and "does not run" in r.json()["error"]
