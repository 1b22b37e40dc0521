"""The session inspector's backend on a real `serve --listen` daemon: the one-time login link
from `agent-bridge inspect`, the cookie and key, the session list and its filters, a
session's log and search, the live SSE stream of a running turn, a permission answered and
a turn cancelled from the inspector, and what is refused (cross-site, read-only, no login)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.e2e.inspector_support import inspect_link, logged_in, login
from tests.e2e.ws_support import ws_client, ws_daemon
from tests.waiting import wait_until

pytestmark = pytest.mark.anyio


async def test_login_link_is_one_time_and_the_api_needs_cookie_and_key(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d, httpx.AsyncClient(timeout=30) as http:
        base = f"http://127.0.0.1:{d.port}"
        link = await inspect_link(d, tmp_path, discover=True)  # found through the state dir's store
        assert link.startswith(f"{base}/inspector/login?code=")
        me = f"{base}/inspector/api/me"
        assert (await http.get(me)).status_code == 401
        s = await login(http, link)
        # The code is spent: a second use logs nobody in.
        again = await http.get(link)
        assert again.status_code == 403 and "set-cookie" not in again.headers
        r = await http.get(me, headers=s.headers)
        assert r.status_code == 200 and r.json()["access"] == "full"
        # Either half alone opens nothing: the cookie (which other ports of 127.0.0.1 get
        # too) without the page's key, or the key without the cookie.
        assert (await http.get(me, headers={"Cookie": f"ab_inspector={s.cookie}"})).status_code == 401
        assert (await http.get(me, headers={"X-Inspector-Key": s.key})).status_code == 401
        # The daemon's bearer token is no login for the inspector API.
        assert (await http.get(me, headers=d.auth())).status_code == 401
        # A link needs the token; a page (with an Origin) cannot make one.
        assert (await http.post(f"{base}/inspector/links")).status_code == 401
        page_made = await http.post(f"{base}/inspector/links", headers={**d.auth(), "Origin": base})
        assert page_made.status_code == 403
        # The page and its files, with a strict CSP (no inline script anywhere).
        index = await http.get(f"{base}/")
        assert index.status_code == 200 and "<script src=" in index.text
        csp = index.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        js = await http.get(f"{base}/inspector/static/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert (await http.get(f"{base}/inspector/static/../app.py")).status_code == 404
        # /acp is still the ACP endpoint, with its own gate.
        assert (await http.post(f"{base}/acp", json={})).status_code == 401


async def test_cross_site_requests_see_nothing(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d, httpx.AsyncClient(timeout=30) as http:
        base = f"http://127.0.0.1:{d.port}"
        s = await logged_in(d, tmp_path, http)
        api = f"{base}/inspector/api/sessions"
        assert (await http.get(api, headers=s.headers)).status_code == 200
        for bad in (
            {"Origin": "http://evil.example"},
            {"Origin": f"http://localhost:{d.port}"},  # another origin, even on this machine
            {"Origin": "null"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},  # another port of 127.0.0.1
        ):
            for url in (api, f"{base}/"):
                r = await http.get(url, headers={**s.headers, **bad})
                assert r.status_code == 403, (bad, url)
                assert "sessions" not in r.text
        # DNS rebinding: a Host that is not the daemon's.
        assert (await http.get(api, headers={**s.headers, "Host": "evil.example"})).status_code == 403
        # Writes need this page's Origin (and JSON).
        sid = "sess_none"
        r = await http.post(f"{base}/inspector/api/sessions/{sid}/cancel", headers=s.headers, json={})
        assert r.status_code == 403


async def test_list_log_search_and_filters(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d, ws_client(d) as c, httpx.AsyncClient(timeout=30) as http:
        await c.acp.initialize()
        sid = await c.acp.new_session(str(tmp_path))
        await c.acp.prompt(sid, "stream 5")
        s = await logged_in(d, tmp_path, http)
        api = f"{s.base}/inspector/api"
        listed = (await http.get(f"{api}/sessions", headers=s.headers)).json()
        (row,) = [r for r in listed["sessions"] if r["id"] == sid]
        assert row["agent"] == "fake" and row["cwd"] == str(tmp_path) and row["status"] == "idle"
        assert row["owner"]["here"] is True and row["owner"]["alive"] is True and row["controllable"]
        assert listed["agents"] == ["fake"]
        for query, shown in (
            ({"agent": "fake"}, True),
            ({"agent": "other"}, False),
            ({"status": "busy"}, False),
            ({"cwd": tmp_path.name}, True),
            ({"cwd": "/nowhere"}, False),
            ({"q": sid[5:15]}, True),
        ):
            got = (await http.get(f"{api}/sessions", params=query, headers=s.headers)).json()
            assert (sid in [r["id"] for r in got["sessions"]]) is shown, query
        events = (await http.get(f"{api}/sessions/{sid}/events", headers=s.headers)).json()["events"]
        texts = [_chunk(e) for e in events if _chunk(e)]
        assert texts == [f"chunk {i} " for i in range(5)]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        hits = (
            await http.get(f"{api}/sessions/{sid}/search", params={"q": "CHUNK 3"}, headers=s.headers)
        ).json()
        assert [_chunk(e) for e in hits["events"]] == ["chunk 3 "]
        assert (await http.get(f"{api}/sessions/sess_nope", headers=s.headers)).status_code == 404


async def test_follow_a_turn_answer_its_permission_and_cancel_it(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d, ws_client(d) as c, httpx.AsyncClient(timeout=30) as http:
        await c.acp.initialize()
        sid = await c.acp.new_session(str(tmp_path))
        asked = anyio.Event()

        async def never_answers(method: str, params: dict[str, Any]) -> Any:
            asked.set()
            await anyio.sleep_forever()

        c.acp.handler = never_answers
        s = await logged_in(d, tmp_path, http)
        api = f"{s.base}/inspector/api/sessions/{sid}"
        with anyio.fail_after(60):
            async with http.stream("GET", f"{api}/stream", headers=s.headers) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                batches = _batches(stream)
                first = await anext(batches)
                assert first["state"]["session"]["id"] == sid
                async with anyio.create_task_group() as tg:
                    results: list[Any] = []

                    async def prompt(text: str) -> None:
                        results.append(await c.acp.prompt(sid, text))

                    tg.start_soon(prompt, "permission")
                    await asked.wait()
                    # The pending request arrives on the stream; an observer login cannot answer.
                    pending = await _until(batches, lambda b: b["state"]["pending"])
                    (req,) = pending["state"]["pending"]
                    assert req["toolCall"]["toolCallId"] == "t1"
                    ro = await logged_in(d, tmp_path, http, "--read-only")
                    body = {"index": 0, "optionId": "allow"}
                    denied = await http.post(f"{api}/permission", headers=ro.write_headers, json=body)
                    assert denied.status_code == 403
                    bad = await http.post(
                        f"{api}/permission", headers=s.write_headers, json={"index": 0, "optionId": "x"}
                    )
                    assert bad.status_code == 409
                    ok = await http.post(f"{api}/permission", headers=s.write_headers, json=body)
                    assert ok.status_code == 200
                    done = await _until(
                        batches, lambda b: any(_chunk(e) == "permission: allow" for e in b["events"])
                    )
                    assert done is not None
                assert results[0]["stopReason"] == "end_turn"
                # Who answered is in the log.
                log = (await http.get(f"{api}/events", headers=s.headers)).json()["events"]
                resolved = [e["message"]["bridge"] for e in log if "bridge" in e["message"]]
                assert {
                    "type": "permission_resolved",
                    "resolvedBy": {"connection": "inspector", "name": "agent-bridge inspector"},
                    "asked": 1,
                } in resolved

                # A slow turn's chunks arrive on the stream while it runs; the inspector cancels it.
                c.acp.handler = never_answers
                async with anyio.create_task_group() as tg:
                    results.clear()
                    tg.start_soon(prompt, "slow 200 0.05")
                    running = await _until(
                        batches, lambda b: any((_chunk(e) or "").startswith("slow 2") for e in b["events"])
                    )
                    assert running["state"]["session"]["turnActive"] is True
                    r = await http.post(f"{api}/cancel", headers=s.write_headers, json={})
                    assert r.status_code == 200
                assert results[0]["stopReason"] == "cancelled"
                r = await http.post(f"{api}/cancel", headers=s.write_headers, json={})
                assert r.status_code == 409


def _chunk(event: dict[str, Any]) -> str | None:
    params = event["message"].get("params") or {}
    update = params.get("update") if isinstance(params, dict) else None
    if isinstance(update, dict) and update.get("sessionUpdate") == "agent_message_chunk":
        return str(update["content"]["text"])
    return None


async def _batches(stream: httpx.Response) -> Any:
    async for line in stream.aiter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


async def _until(batches: Any, pred: Any) -> dict[str, Any]:
    async for batch in batches:
        if pred(batch):
            return dict(batch)
    raise AssertionError("stream ended")


async def test_live_views_are_bounded(tmp_path: Path) -> None:
    from bridge.inspector.app import MAX_STREAMS

    async with ws_daemon(tmp_path) as d, ws_client(d) as c, httpx.AsyncClient(timeout=30) as http:
        await c.acp.initialize()
        sid = await c.acp.new_session(str(tmp_path))
        s = await logged_in(d, tmp_path, http)
        url = f"{s.base}/inspector/api/sessions/{sid}/stream"
        with anyio.fail_after(60):
            async with contextlib.AsyncExitStack() as stack:
                readers = []  # kept: a dropped reader would close its stream
                for _ in range(MAX_STREAMS):
                    r = await stack.enter_async_context(http.stream("GET", url, headers=s.headers))
                    assert r.status_code == 200
                    readers.append(_batches(r))
                    await anext(readers[-1])  # started: it counts
                over = await http.get(url, headers=s.headers)
                assert over.status_code == 503 and "live views" in over.json()["error"]

            # Closed views free their places, once the daemon has seen the disconnects (nothing
            # tells the client when: it asks again until one is let in).
            async def let_in() -> bool:
                async with http.stream("GET", url, headers=s.headers) as again:
                    return again.status_code == 200

            await wait_until(let_in, 10, "a place freed by the closed live views")


async def test_hostile_requests_get_precise_refusals(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d, ws_client(d) as c, httpx.AsyncClient(timeout=30) as http:
        await c.acp.initialize()
        sid = await c.acp.new_session(str(tmp_path))
        s = await logged_in(d, tmp_path, http)
        api = f"{s.base}/inspector/api/sessions/{sid}"
        for code in ("", "x" * 10_000, "../../etc", "%00"):
            assert (await http.get(f"{s.base}/inspector/login", params={"code": code})).status_code == 403
        cookie = {"Cookie": f"ab_inspector={'x' * 4000}", "X-Inspector-Key": "y" * 4000}
        assert (await http.get(f"{api}", headers=cookie)).status_code == 401
        w = s.write_headers
        cases = [
            ({**w, "Content-Type": "text/plain"}, b"{}", 415),
            (w, b"not json", 400),
            (w, b"[1]", 400),
            (w, b"{" + b" " * 5000 + b"}", 413),
            (w, b'{"index": "0", "optionId": "allow"}', 400),
            (w, b'{"index": 0, "optionId": 7}', 400),
            (w, b'{"index": 99, "optionId": "allow"}', 409),  # nothing pending
            (w, b'{"index": -1, "optionId": "allow"}', 409),
        ]
        for headers, body, status in cases:
            r = await http.post(f"{api}/permission", headers=headers, content=body)
            assert r.status_code == status, (body[:40], r.status_code, r.text)
            assert "error" in r.json()
        assert (
            await http.get(f"{api}/events", params={"after": "-5", "limit": "x"}, headers=s.headers)
        ).status_code == 200
        assert (await http.get(f"{s.base}/inspector/api/nope", headers=s.headers)).status_code == 404
        assert (await http.delete(f"{api}", headers=s.headers)).status_code == 404
        # The daemon is still fine.
        await c.acp.prompt(sid, "echo still here")
        assert "Traceback" not in d.stderr.text()
