"""The inspector's ASGI app: every path of the `serve --listen` port but `/acp` (which stays
the ACP endpoint) — the page at `/`, its static files, the login exchange and a JSON + SSE API
over the store (spec/inspector.md).

Checked before anything is read: the `Host` must name the daemon (as for `/acp`: no DNS
rebinding), and a cross-site request gets 403 (`auth.cross_site`). The API needs a login
(cookie and key, `auth`); writes need the full token's login, the daemon's own `Origin` and
a JSON body.
"""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from bridge.core.permissions import answer_from_inspector
from bridge.errors import StoreError
from bridge.inspector import auth, views
from bridge.transports import ws_gate
from bridge.wire import jsonrpc

if TYPE_CHECKING:
    from bridge.core.manager import SessionManager

log = logging.getLogger(__name__)

STATIC = {
    "app.js": "text/javascript; charset=utf-8",
    "login.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}
REMOTE_POLL = 1.0  # a session another daemon writes: how often its log is read while followed
KEEPALIVE = 15.0
# Live streams open at once: each holds one HTTP slot of the port, which `/acp` shares.
MAX_STREAMS = 32
MAX_BODY = 4096


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status, media_type="application/json")


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


class Inspector:
    def __init__(self, manager: SessionManager, policy: Callable[[], ws_gate.Policy]) -> None:
        self.manager = manager
        self._policy = policy
        self.logins = auth.Logins()
        self.streams = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except StoreError as exc:
            # The store is down or locked: say so (the daemon's log has the details).
            response = _error(503, f"the session store cannot be read: {exc}")
        for name, value in auth.SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        hosts = request.headers.getlist("host")
        if len(hosts) != 1 or hosts[0].strip().lower() not in self._policy().hosts:
            return Response("Forbidden: Host is not this daemon\n", 403, media_type="text/plain")
        host = hosts[0].strip().lower()
        origin = request.headers.get("origin")
        if auth.cross_site(host, origin, request.headers.get("sec-fetch-site")):
            return Response("Forbidden: cross-site request\n", 403, media_type="text/plain")
        path, method = request.url.path, request.method
        if path == "/" and method == "GET":
            return self._static("index.html", "text/html; charset=utf-8")
        if path.startswith("/inspector/static/") and method == "GET":
            name = path.removeprefix("/inspector/static/")
            if name in STATIC:
                return self._static(name, STATIC[name])
        if path == "/inspector/links" and method == "POST":
            return self._new_link(request)
        if path == "/inspector/login" and method == "GET":
            return self._login(request)
        if path.startswith("/inspector/api/"):
            access = self.logins.access(
                request.cookies.get(auth.COOKIE), request.headers.get("x-inspector-key")
            )
            if access is None:
                return _error(401, "not logged in: run `agent-bridge inspect` for a login link")
            if method == "POST":
                if origin != auth.own_origin(host):
                    return _error(403, "a write needs this page's Origin")
                if access != "full":
                    return _error(
                        403, "read-only login (observer token): cancel and answers need the full token"
                    )
            return await self._api(request, path.removeprefix("/inspector/api/").split("/"), access)
        return Response("Not Found\n", 404, media_type="text/plain")

    def _static(self, name: str, media_type: str) -> Response:
        data = resources.files("bridge.inspector").joinpath("static", name).read_bytes()
        return Response(data, media_type=media_type, headers={"Cache-Control": "no-cache"})

    # -- login ------------------------------------------------------------------------------------
    def _new_link(self, request: Request) -> Response:
        """`agent-bridge inspect`: the daemon's token as a bearer header (no Origin: not a page)."""
        if request.headers.get("origin") is not None:
            return _error(403, "login links are made by `agent-bridge inspect`, not by a page")
        granted = ws_gate.granted(self._policy(), list(request.headers.items()))
        if granted is None:
            return _error(401, "a bearer token is required: Authorization: Bearer <token>")
        access = "observer" if request.query_params.get("read_only") == "1" else granted
        code = self.logins.new_code(access)
        log.info("inspector: one-time %s login link made", access)
        return _json({"path": f"/inspector/login?code={code}", "access": access, "expiresIn": auth.CODE_TTL})

    def _login(self, request: Request) -> Response:
        found = self.logins.exchange(request.query_params.get("code", ""))
        if found is None:
            page = "<!doctype html><title>agent-bridge</title><p>This login link was used or has expired: run <code>agent-bridge inspect</code> again."
            return Response(page, 403, media_type="text/html; charset=utf-8")
        cookie, key, access = found
        log.info("inspector: a browser logged in (%s)", access)
        page = (
            '<!doctype html><meta charset="utf-8"><title>agent-bridge inspector</title>'
            f'<meta name="inspector-key" content="{html.escape(key)}">'
            '<script src="/inspector/static/login.js"></script><p>Logging in…'
        )
        return Response(
            page, media_type="text/html; charset=utf-8", headers={"Set-Cookie": auth.cookie_header(cookie)}
        )

    # -- the API ----------------------------------------------------------------------------------
    async def _api(self, request: Request, parts: list[str], access: str) -> Response:
        method = request.method
        if parts == ["me"] and method == "GET":
            return _json({"access": access, "instance": self.manager.ownership.instance.id})
        if parts == ["sessions"] and method == "GET":
            filters = {
                k: v for k, v in request.query_params.items() if k in ("agent", "status", "cwd", "owner", "q")
            }
            return _json(await views.session_list(self.manager, filters))
        if len(parts) < 2 or parts[0] != "sessions":
            return _error(404, "no such API")
        sid, rest = parts[1], parts[2:]
        rec = await self.manager.store.get_session(sid)
        if rec is None or rec.deleted:
            return _error(404, f"no session {sid}")
        if rest == [] and method == "GET":
            return _json(await self._state(sid))
        if rest == ["events"] and method == "GET":
            after, limit = _int(request, "after", 0), min(_int(request, "limit", 1000), 5000)
            return _json({"events": await views.events(self.manager, sid, after, limit)})
        if rest == ["search"] and method == "GET":
            q = request.query_params.get("q", "")
            hits = await views.search(self.manager, sid, q) if q else []
            return _json({"q": q, "events": hits})
        if rest == ["stream"] and method == "GET":
            if self.streams >= MAX_STREAMS:
                return _error(503, f"{MAX_STREAMS} live views are open already: close one")
            return StreamingResponse(
                self._follow(sid, _int(request, "after", 0)), media_type="text/event-stream"
            )
        if method == "POST" and rest in (["cancel"], ["permission"]):
            body = await _body(request)
            if isinstance(body, Response):
                return body
            return await self._act(sid, rest[0], body)
        return _error(404, "no such API")

    async def _state(self, sid: str) -> dict[str, Any]:
        rec = await self.manager.store.get_session(sid)
        assert rec is not None
        owners: dict[str, Any] = {}
        if rec.owner:
            inst = await self.manager.store.instance(rec.owner)
            if inst is not None:
                owners[inst.id] = inst
        return {
            "session": views.session_row(rec, self.manager, owners),
            "pending": views.pending(self.manager, sid),
        }

    async def _follow(self, sid: str, after: int) -> AsyncIterator[bytes]:
        """SSE: the session's state, then each batch of new log rows and every change of
        state, as it happens (a session of this daemon wakes the stream; another daemon's is
        read every `REMOTE_POLL` seconds)."""
        last_state = b""
        last_sent = anyio.current_time()
        self.streams += 1
        try:
            async for chunk in self._changes(sid, after, last_state, last_sent):
                yield chunk
        finally:
            self.streams -= 1

    async def _changes(
        self, sid: str, after: int, last_state: bytes, last_sent: float
    ) -> AsyncIterator[bytes]:
        while True:
            live = self.manager.sessions.get(sid)
            wake = anyio.Event()
            if live is not None:
                live.watchers.add(wake)
            try:
                await self.manager.store.flush()
                batch = await views.events(self.manager, sid, after, 500)
                state = orjson.dumps(await self._state(sid))
                if batch or state != last_state:
                    if batch:
                        after = batch[-1]["seq"]
                    last_state, last_sent = state, anyio.current_time()
                    yield b"data: " + orjson.dumps({"events": batch, "state": orjson.loads(state)}) + b"\n\n"
                    if len(batch) == 500:
                        continue  # more are waiting already
                elif anyio.current_time() - last_sent >= KEEPALIVE:
                    last_sent = anyio.current_time()
                    yield b": keepalive\n\n"
                with anyio.move_on_after(REMOTE_POLL if live is None else KEEPALIVE):
                    await wake.wait()
            finally:
                if live is not None:
                    live.watchers.discard(wake)

    async def _act(self, sid: str, what: str, body: dict[str, Any]) -> Response:
        live = self.manager.sessions.get(sid)
        if live is None or live.closed:
            return _error(409, "this daemon does not run that session: act on it in the daemon that owns it")
        if what == "cancel":
            if not live.turn_active:
                return _error(409, "no turn is running")
            live.log("client", jsonrpc.notification_frame("session/cancel", {"sessionId": sid}))
            live.record_event({"type": "cancelled_in_inspector"})
            log.info("inspector: turn of session %s cancelled", sid)
            with anyio.move_on_after(10):
                await live.cancel()
            return _json({"cancelled": True})
        index, option = body.get("index"), body.get("optionId")
        if not isinstance(index, int) or not isinstance(option, str):
            return _error(
                400, 'the body is {"index": <pending request>, "optionId": <option or "cancelled">}'
            )
        if not answer_from_inspector(live, index, option):
            return _error(409, "no such pending permission request or option (answered meanwhile?)")
        log.info("inspector: permission of session %s answered (%s)", sid, option)
        return _json({"answered": True})


def _int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() else default


async def _body(request: Request) -> dict[str, Any] | Response:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _error(415, "Content-Type must be application/json")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            return _error(413, "body too large")
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        return _error(400, "the body is not JSON")
    return body if isinstance(body, dict) else _error(400, "the body must be a JSON object")
