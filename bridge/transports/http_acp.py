"""The Streamable HTTP profile of the ACP remote-transport RFD, on the WebSocket listener's
`/acp` (spec/remote-transport.md): `POST` JSON-RPC messages (`initialize` → 200 with its
response and `Acp-Connection-Id`; anything else → 202), `GET` long-lived SSE streams (the
connection's, and one per session with `Acp-Session-Id`), `DELETE` ends the connection.

Served as an ASGI app (Starlette's request/response types on uvicorn's h11 protocol, see
`front_door`). Every request passes the same gate as a WebSocket handshake (`ws_gate`: Host,
path, Origin, bearer token) before anything else is read. Each HTTP connection is served by
the daemon exactly like a WebSocket or stdio one (`AcpServer.serve`): the same sessions,
ownership and attach rules; only the framing differs (`http_streams`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from anyio.abc import TaskGroup
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.transports import ws_gate, ws_limits
from bridge.transports.http_streams import SESSION_SCOPED, ClientTooSlow, HttpConnection, SseStream

if TYPE_CHECKING:
    from bridge.transports.ws_options import ServeFn, WsOptions

log = logging.getLogger(__name__)

CONNECTION_HEADER = "acp-connection-id"
SESSION_HEADER = "acp-session-id"
INITIALIZE_TIMEOUT = 30.0
KEEPALIVE = 15.0  # an idle SSE stream gets a comment this often (proxies drop silent ones)
IDLE_TIMEOUT = 120.0  # a connection with no connection stream and no POST for this long ends


def rpc_error(status: int, code: int, message: str, rid: Any = None) -> Response:
    """An HTTP refusal whose body is a JSON-RPC error (the client's id when it could be read)."""
    body = {"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}
    return Response(orjson.dumps(body), status, media_type="application/json")


class HttpAcp:
    def __init__(
        self,
        serve: ServeFn,
        options: WsOptions,
        policy: Callable[[], ws_gate.Policy],
        room: Callable[[], bool],
        tg: TaskGroup,
        inspector: ASGIApp | None = None,
    ) -> None:
        self._serve = serve
        # Every other path of the port: the session inspector (bridge/inspector), if any.
        self._inspector = inspector
        self.options = options
        self._policy = policy
        self._room = room  # whether one more ACP connection may open (shared with WebSocket)
        self._tg = tg
        self.connections: dict[str, HttpConnection] = {}
        self._refusal_log = ws_limits.LogBudget()
        self.refused = 0

    # -- ASGI ----------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self._inspector is not None and scope["path"] != ws_gate.PATH:
            await self._inspector(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await self._handle(request)
        except ClientDisconnect:
            return
        await response(scope, receive, send)

    async def _handle(self, request: Request) -> Response:
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
        policy = self._policy()
        refusal = ws_gate.check(policy, request.scope["path"], headers)
        if refusal is not None:
            return self._refuse(request, refusal)
        access = ws_gate.granted(policy, headers) or "full"
        cid = request.headers.get(CONNECTION_HEADER)
        if request.method == "POST":
            return await self._post(request, cid, access)
        if request.method == "GET":
            return self._get(request, cid, access)
        if request.method == "DELETE":
            return self._delete(cid, access)
        return Response(
            "Method Not Allowed\n", HTTPStatus.METHOD_NOT_ALLOWED, headers={"Allow": "GET, POST, DELETE"}
        )

    def _refuse(self, request: Request, refusal: ws_gate.Refusal) -> Response:
        self.refused += 1
        logged, skipped = self._refusal_log.allow()
        if logged:
            client = request.client
            log.info(
                "HTTP %s from %s refused: %d %s%s",
                request.method,
                f"{client.host}:{client.port}" if client else "?",
                refusal.status,
                refusal.reason,
                ws_limits.suffix(skipped),
            )
        response = Response(refusal.body, refusal.status, media_type="text/plain")
        if refusal.status == HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Bearer realm="agent-bridge"'
        return response

    def _connection(self, cid: str | None, access: str) -> HttpConnection | Response:
        if not cid:
            return rpc_error(400, -32600, "Acp-Connection-Id header required (POST initialize first)")
        conn = self.connections.get(cid)
        if conn is None or conn.ended:
            return rpc_error(404, -32600, "unknown Acp-Connection-Id (it ended, or never existed)")
        if access != "full" and conn.access != access:
            # An observer token cannot act on a connection opened with the full token.
            return rpc_error(403, -32600, "this token does not grant access to that connection")
        return conn

    # -- POST ----------------------------------------------------------------------------------------
    async def _post(self, request: Request, cid: str | None, access: str) -> Response:
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return rpc_error(415, -32600, "Content-Type must be application/json")
        limit = self.options.max_message
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return rpc_error(413, -32600, f"message exceeds the size limit ({limit} bytes)")
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                return rpc_error(413, -32600, f"message exceeds the size limit ({limit} bytes)")
        raw = bytes(body)
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return rpc_error(400, -32700, "Parse error: the body is not JSON")
        if isinstance(message, list):
            return rpc_error(501, -32600, "batch requests are not supported")
        if not isinstance(message, dict):
            return rpc_error(400, -32600, "Invalid Request: the body must be one JSON-RPC object")
        rid = message.get("id") if isinstance(message.get("id"), int | str) else None
        if not cid and message.get("method") == "initialize" and "id" in message:
            return await self._initialize(message, raw, access)
        found = self._connection(cid, access)
        if isinstance(found, Response):
            return found
        conn = found
        session_id = request.headers.get(SESSION_HEADER)
        params = message.get("params")
        named = params.get("sessionId") if isinstance(params, dict) else None
        method = message.get("method")
        if method in SESSION_SCOPED and not session_id:
            return rpc_error(400, -32600, f"{method} needs the Acp-Session-Id header", rid)
        if session_id and isinstance(named, str) and named != session_id:
            return rpc_error(400, -32600, "Acp-Session-Id does not match params.sessionId", rid)
        if session_id and not conn.note_session(session_id, stream=True):
            return rpc_error(400, -32600, "too many sessions named on this connection", rid)
        if isinstance(named, str):
            conn.note_session(named, stream=False)
        try:
            await conn.post(message, raw, session_id or None)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return rpc_error(404, -32600, "unknown Acp-Connection-Id (it ended, or never existed)", rid)
        return Response(status_code=HTTPStatus.ACCEPTED)

    async def _initialize(self, message: dict[str, Any], raw: bytes, access: str) -> Response:
        if not self._room():
            return rpc_error(
                503, -32600, f"too many connections (limit {self.options.max_connections})", message["id"]
            )
        conn = HttpConnection(access, limit=self.options.queue_limit, send_timeout=self.options.send_timeout)
        self.connections[conn.id] = conn
        self._tg.start_soon(self._run, conn)
        log.info(
            "HTTP connection %s opened%s",
            conn.id[:6],
            " (observer, read-only)" if access == "observer" else "",
        )
        answer = await conn.call(message, raw, INITIALIZE_TIMEOUT)
        if answer is None:
            conn.close()
            return rpc_error(504, -32603, "initialize was not answered in time", message["id"])
        return Response(
            orjson.dumps(answer), 200, media_type="application/json", headers={"Acp-Connection-Id": conn.id}
        )

    # -- GET -----------------------------------------------------------------------------------------
    def _get(self, request: Request, cid: str | None, access: str) -> Response:
        accepts = "text/event-stream" in request.headers.get("accept", "").lower()
        if not accepts and not cid:
            # Neither an SSE stream nor an upgrade: what the WebSocket profile answers.
            return Response(
                "Upgrade Required\n", HTTPStatus.UPGRADE_REQUIRED, headers={"Upgrade": "websocket"}
            )
        if not accepts:
            return rpc_error(406, -32600, "Accept must include text/event-stream")
        found = self._connection(cid, access)
        if isinstance(found, Response):
            return found
        conn = found
        session_id = request.headers.get(SESSION_HEADER)
        if session_id:
            # Any session id: a client may open a session's stream before it loads the session
            # (the RFD's resume flow; the TypeScript SDK does). Which sessions it may act on
            # is the daemon's to decide, per request; the stream only holds its own messages.
            if not conn.note_session(session_id, stream=True):
                return rpc_error(400, -32600, "too many sessions named on this connection")
            stream = conn.streams[session_id]
        else:
            stream = conn.main
        if stream.attached:
            return rpc_error(409, -32600, "that stream is already open on another request")
        stream.attached = True
        conn.last_used = anyio.current_time()
        return StreamingResponse(
            self._events(conn, stream),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _events(self, conn: HttpConnection, stream: SseStream) -> AsyncIterator[bytes]:
        try:
            while True:
                frames = await stream.take(KEEPALIVE)
                if frames is None:
                    return
                if not frames:
                    yield b": keepalive\n\n"
                    continue
                yield b"".join(b"data: " + f + b"\n\n" for f in frames)
        finally:
            stream.attached = False
            conn.last_used = anyio.current_time()

    # -- DELETE --------------------------------------------------------------------------------------
    def _delete(self, cid: str | None, access: str) -> Response:
        found = self._connection(cid, access)
        if isinstance(found, Response):
            return found
        found.end()
        return Response(status_code=HTTPStatus.ACCEPTED)

    # -- one connection ------------------------------------------------------------------------------
    async def _run(self, conn: HttpConnection) -> None:
        reason = "closed"
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._reap_when_idle, conn)
                try:
                    served = await self._serve(
                        conn.incoming(),
                        conn.write,
                        transport="http",
                        outbox_limit=self.options.queue_limit,
                        read_only=conn.access == "observer",
                    )
                except* ClientTooSlow:
                    reason = f"client too slow: it read nothing for {self.options.send_timeout:g} s"
                except* Exception:
                    # A failure on one connection ends that connection, never the listener.
                    log.exception("HTTP connection %s failed", conn.id[:6])
                    reason = "internal error"
                else:
                    if served.outbox.overflowed:
                        reason = f"client too slow: outgoing queue over {self.options.queue_limit} bytes"
                tg.cancel_scope.cancel()
        finally:
            conn.close()
            self.connections.pop(conn.id, None)
            log.info("HTTP connection %s ended: %s", conn.id[:6], reason)

    async def _reap_when_idle(self, conn: HttpConnection) -> None:
        # Nothing tells an HTTP server that its client went away without DELETE: a connection
        # nobody reads from or posts to is ended (its sessions stay; `session/load` reopens).
        while not conn.ended:
            await anyio.sleep(IDLE_TIMEOUT / 4)
            if not conn.main.attached and anyio.current_time() - conn.last_used > IDLE_TIMEOUT:
                log.info("HTTP connection %s idle for %g s: ending it", conn.id[:6], IDLE_TIMEOUT)
                conn.end()

    def close_all(self) -> None:
        for conn in list(self.connections.values()):
            conn.end()
