"""A scripted fake model server on 127.0.0.1 for the real agent CLIs.

Each wire format (Anthropic Messages, OpenAI Responses, chat completions, Gemini) is a
`Dialect` that turns a scripted `Reply` into the bytes of an HTTP response. A test pushes
replies in order with `server.script(...)`; every request the agents send is kept in
`server.requests` (path, headers without credentials, parsed body) so the test can check
what the agent asked for (e.g. which tools it offered).

Threaded stdlib HTTP server: no dependency, starts in a few ms, stops with the test.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol


@dataclass
class ToolUse:
    """The model asks for a tool. `name` may be a callable that picks the tool name from
    the tools the agent offered in the request (names differ between CLI versions)."""

    name: str | Callable[[list[str]], str]
    input: dict[str, Any]
    id: str = "call_1"


@dataclass
class Reply:
    """One scripted model answer: optional thinking, text, tool uses, and pacing."""

    text: str = ""
    thinking: str = ""
    tools: list[ToolUse] = field(default_factory=list)
    # Split text into this many chunks, and sleep between chunks (slow streams, cancel tests).
    chunks: int = 1
    delay: float = 0.0
    stop: str | None = None  # override the stop reason (e.g. "max_tokens", "refusal")
    # Merged into the usage the dialect reports (e.g. cache or reasoning counters).
    usage: dict[str, Any] | None = None
    # Only for a request whose body this accepts (agents with sub-agents ask concurrently):
    # the first scripted reply that accepts the request answers it; no `when` accepts any.
    when: Callable[[Any], bool] | None = None


@dataclass
class Reported:
    """The usage the server sent for one generation request, in its dialect's own shape;
    `scripted`: it answered with a scripted reply (not a helper call such as a title)."""

    path: str
    usage: dict[str, Any]
    scripted: bool


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


class Dialect(Protocol):
    def matches(self, method: str, path: str) -> bool: ...

    def respond(self, req: Request, reply: Reply, tool_names: list[str]) -> tuple[int, str, Iterator[bytes]]:
        """(status, content type, body chunks)."""

    def tool_names(self, body: Any) -> list[str]: ...

    # Optional: `consumes(req) -> bool`, False for helper calls answered without a scripted reply.
    # Optional: `usage(reply) -> dict`, the usage it reports for a reply (kept in `reported`).


_SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key", "api-key"}


class FakeModelServer:
    def __init__(self, dialects: list[Dialect], default: Reply | None = None) -> None:
        self.dialects = dialects
        self.replies: deque[Reply] = deque()
        self.default = default or Reply(text="(no scripted reply left)")
        self.requests: list[Request] = []
        # The requests that took a scripted reply (the agent loop's), without helper calls such
        # as a title request, which an agent may send at any point of a turn.
        self.generations: list[Request] = []
        self.reported: list[Reported] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting ---------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _next(self, body: Any = None) -> Reply:
        with self._lock:
            for reply in self.replies:
                if reply.when is None or reply.when(body):
                    self.replies.remove(reply)
                    return reply
            return self.default

    # -- lifecycle ---------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeModelServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in _SECRET_HEADERS}
                req = Request(self.path, headers, body)
                with server._lock:
                    server.requests.append(req)
                for dialect in server.dialects:
                    if dialect.matches(method, self.path):
                        # A dialect may mark helper calls (titles, routers) as not consuming a reply.
                        consumes = getattr(dialect, "consumes", None)
                        generation = method == "POST" and _is_generation(self.path)
                        if generation and consumes is not None:
                            generation = bool(consumes(req))
                        if generation:
                            with server._lock:
                                server.generations.append(req)
                        reply = server._next(body) if generation else Reply()
                        status, ctype, chunks = dialect.respond(req, reply, dialect.tool_names(body))
                        usage = getattr(dialect, "usage", None)
                        if usage is not None and status == 200 and method == "POST" and _is_generation(self.path):
                            with server._lock:
                                server.reported.append(Reported(self.path, usage(reply), generation))
                        self._send(status, ctype, chunks)
                        return
                self._send(404, "application/json", iter([b'{"error":"not found"}']))

            def _send(self, status: int, ctype: str, chunks: Iterator[bytes]) -> None:
                self.send_response(status)
                self.send_header("content-type", ctype)
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in chunks:
                        if chunk:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

            def do_POST(self) -> None:
                self._handle("POST")

            def do_GET(self) -> None:
                self._handle("GET")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _is_generation(path: str) -> bool:
    """Requests that consume a scripted reply (not model lists or token counts)."""
    p = path.split("?")[0]
    return not (p.endswith("/models") or "count_tokens" in p or "countTokens" in p)


def sse(event: str | None, data: Any) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n".encode()


def paced(items: list[bytes], delay: float) -> Iterator[bytes]:
    for item in items:
        if delay:
            time.sleep(delay)
        yield item


def split_text(text: str, parts: int) -> list[str]:
    if parts <= 1 or len(text) <= 1:
        return [text] if text else []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def pick_tool(name: str | Callable[[list[str]], str], offered: list[str]) -> str:
    return name(offered) if callable(name) else name
