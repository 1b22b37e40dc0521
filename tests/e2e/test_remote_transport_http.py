"""The Streamable HTTP profile against the real daemon: the gate (token, Origin, Host, path)
refuses POST, GET and DELETE exactly as it refuses a WebSocket handshake, and hostile or
malformed requests get a precise HTTP status with a JSON-RPC error body — never a crash:
the daemon serves a full connection afterwards and started no agent for any of them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from tests.acp_schema import check_message
from tests.e2e.ws_support import WsDaemon, ws_daemon

pytestmark = pytest.mark.anyio

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": 1}}


def _url(d: WsDaemon, path: str = "/acp") -> str:
    return f"http://127.0.0.1:{d.port}{path}"


async def _open(http: httpx.AsyncClient, d: WsDaemon, token: str | None = None) -> str:
    r = await http.post(_url(d), json=INIT, headers={"Authorization": f"Bearer {token or d.token}"})
    assert r.status_code == 200, r.text
    return r.headers["Acp-Connection-Id"]


async def test_the_gate_holds_for_post_get_and_delete(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path) as d, httpx.AsyncClient(timeout=20) as http:
        tok, p = d.token, d.port
        bearer = {"Authorization": f"Bearer {tok}"}
        cases: list[tuple[str, dict[str, str], str, int]] = [
            ("no-token", {}, "/acp", 401),
            ("wrong-token", {"Authorization": f"Bearer {tok[:-1]}x"}, "/acp", 401),
            ("basic", {"Authorization": f"Basic {tok}"}, "/acp", 401),
            ("token-in-query", {}, f"/acp?token={tok}", 401),
            ("token-in-cookie", {"Cookie": f"token={tok}"}, "/acp", 401),
            ("foreign-origin", {**bearer, "Origin": "http://evil.example"}, "/acp", 403),
            ("null-origin", {**bearer, "Origin": "null"}, "/acp", 403),
            ("own-origin", {**bearer, "Origin": f"http://127.0.0.1:{p}"}, "/acp", 403),
            ("rebinding-host", {**bearer, "Host": f"evil.example:{p}"}, "/acp", 403),
            ("host-prefix", {**bearer, "Host": f"127.0.0.1.evil.com:{p}"}, "/acp", 403),
            ("host-wrong-port", {**bearer, "Host": f"127.0.0.1:{p + 1}"}, "/acp", 403),
            # `/` is the inspector's page (tests/e2e/test_inspector_api.py): other paths are not.
            ("path-other-root", bearer, "/index.html", 404),
            ("path-other", bearer, "/acp/x", 404),
        ]
        got, want = {}, {}
        for name, headers, path, status in cases:
            for method in ("POST", "GET", "DELETE"):
                body = json.dumps(INIT).encode() if method == "POST" else None
                extra = {"Content-Type": "application/json"} if body else {"Accept": "text/event-stream"}
                r = await http.request(method, _url(d, path), content=body, headers={**extra, **headers})
                got[f"{name} {method}"], want[f"{name} {method}"] = r.status_code, status
                if r.status_code == 401:
                    assert r.headers["WWW-Authenticate"] == 'Bearer realm="agent-bridge"'
                assert tok not in r.text and "Acp-Connection-Id" not in r.headers
        assert got == want
        assert d.agents() == []
        assert tok not in d.stderr.text()


def _error(r: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    check_message(body, {})
    assert body["error"]["code"] == code
    return dict(body)


async def test_hostile_requests_get_precise_statuses_and_the_daemon_keeps_serving(tmp_path: Path) -> None:
    async with ws_daemon(tmp_path, "--ws-max-message", "4096") as d, httpx.AsyncClient(timeout=20) as http:
        url, auth = _url(d), {"Authorization": f"Bearer {d.token}"}
        js = {**auth, "Content-Type": "application/json"}
        _error(
            await http.post(url, content=b"{}", headers={**auth, "Content-Type": "text/plain"}), 415, -32600
        )
        _error(await http.post(url, content=b"{not json", headers=js), 400, -32700)
        _error(await http.post(url, content=b"\xff\xfe", headers=js), 400, -32700)
        _error(await http.post(url, content=b"[" + json.dumps(INIT).encode() + b"]", headers=js), 501, -32600)
        _error(await http.post(url, content=b"42", headers=js), 400, -32600)
        _error(await http.post(url, content=b"x" * 5000, headers=js), 413, -32600)
        # Not initialize, no connection: 400; a connection id nobody issued: 404 everywhere.
        note = {"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": "s"}}
        _error(await http.post(url, json=note, headers=auth), 400, -32600)
        ghost = {**auth, "Acp-Connection-Id": "no-such-connection"}
        _error(await http.post(url, json=note, headers=ghost), 404, -32600)
        _error(await http.get(url, headers={**ghost, "Accept": "text/event-stream"}), 404, -32600)
        _error(await http.delete(url, headers=ghost), 404, -32600)
        _error(await http.delete(url, headers=auth), 400, -32600)
        assert (await http.get(url, headers=auth)).status_code == 426  # neither SSE nor upgrade
        assert (await http.put(url, headers=auth)).status_code == 405

        cid = await _open(http, d)
        conn = {**auth, "Acp-Connection-Id": cid}
        _error(await http.get(url, headers=conn), 406, -32600)
        prompt = {
            "jsonrpc": "2.0",
            "id": 9,
            "method": "session/prompt",
            "params": {"sessionId": "a", "prompt": []},
        }
        assert _error(await http.post(url, json=prompt, headers=conn), 400, -32600)["id"] == 9
        mismatch = {**conn, "Acp-Session-Id": "b"}
        _error(await http.post(url, json=prompt, headers=mismatch), 400, -32600)
        with anyio.fail_after(30):
            async with http.stream("GET", url, headers={**conn, "Accept": "text/event-stream"}) as main:
                lines = main.aiter_lines()
                # A bad envelope with a good connection is the daemon's to refuse, on the stream.
                bad = {"jsonrpc": "2.0", "id": 5, "method": 7}
                assert (await http.post(url, json=bad, headers=conn)).status_code == 202
                unknown = {"jsonrpc": "2.0", "id": 6, "method": "no/such"}
                assert (await http.post(url, json=unknown, headers=conn)).status_code == 202
                errors = {}
                async for line in lines:
                    if line.startswith("data: "):
                        msg = json.loads(line[6:])
                        check_message(msg, {})
                        errors[msg["id"]] = msg["error"]["code"]
                        if len(errors) == 2:
                            break
                assert errors == {5: -32600, 6: -32601}
        assert (await http.delete(url, headers=conn)).status_code == 202
        _error(await http.post(url, json=unknown, headers=conn), 404, -32600)
        # Still serving.
        await _open(http, d)
        assert d.agents() == []


async def test_an_observer_connection_is_read_only_and_cannot_use_a_full_one(tmp_path: Path) -> None:
    observer_file = tmp_path / "observer-token"
    async with ws_daemon(tmp_path, "--observer-token-file", str(observer_file)) as d:
        observer = observer_file.read_text().strip()
        async with httpx.AsyncClient(timeout=20) as http:
            full = await _open(http, d)
            headers = {"Authorization": f"Bearer {observer}", "Acp-Connection-Id": full}
            note = {"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": "s"}}
            _error(
                await http.post(_url(d), json=note, headers={**headers, "Acp-Session-Id": "s"}), 403, -32600
            )
            mine = await _open(http, d, observer)
            assert mine != full
        assert "opened (observer, read-only)" in d.stderr.text()
