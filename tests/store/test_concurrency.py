"""Many sessions at once: every log stays gap-free and duplicate-free; list pages."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from tests.conftest import in_process
from tests.store.test_durability import all_events, assert_gap_free

pytestmark = pytest.mark.anyio

SESSIONS = 55


async def test_55_concurrent_sessions_have_gap_free_logs_and_list_pages(tmp_path: Path) -> None:
    async with in_process(tmp_path) as d:
        c = d.client
        await c.initialize()
        with anyio.fail_after(120):
            sids: list[str] = []

            async def one(i: int) -> None:
                sid = await c.new_session(d.cwd)
                sids.append(sid)
                for _ in range(2):
                    result = await c.prompt(sid, f"stream {50 + i}")
                    assert result["stopReason"] == "end_turn"

            async with anyio.create_task_group() as tg:
                for i in range(SESSIONS):
                    tg.start_soon(one, i)

        for sid in sids:
            events = await all_events(c, sid)
            assert_gap_free(events)
            assert {e["message"].get("params", {}).get("sessionId", sid) for e in events} == {sid}
        # 55 sessions: a full first page, a cursor, then the rest.
        first = await c.request("session/list", {"cwd": d.cwd})
        assert len(first["sessions"]) == 50 and "nextCursor" in first
        second = await c.request("session/list", {"cwd": d.cwd, "cursor": first["nextCursor"]})
        assert "nextCursor" not in second
        listed = [s["sessionId"] for s in first["sessions"] + second["sessions"]]
        assert sorted(listed) == sorted(sids)
