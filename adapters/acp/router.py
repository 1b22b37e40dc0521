"""What an ACP agent sends, routed: `session/update`s to the host (checked, re-addressed to
the bridge's session id, history muted on a resume), requests to the session's client.

Split from the passthrough adapter (adapters/acp/adapter.py), which owns the process, the
handshake and the session; this is the read side of its connection.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio

from adapters.acp.fastpath import FastPath
from adapters.acp.settings import AgentSettings
from bridge.core.adapter import SessionHost
from bridge.errors import METHOD_NOT_FOUND, AgentProtocolError, RpcError
from bridge.wire import jsonrpc
from bridge.wire.types import JsonObj

# The adapter's logger: the router's warnings read as the adapter's, as before the split.
log = logging.getLogger("adapters.acp.adapter")

# Agent→client requests forwarded to the session's client.
FORWARDED = frozenset(
    {
        "session/request_permission",
        "fs/read_text_file",
        "fs/write_text_file",
        "terminal/create",
        "terminal/output",
        "terminal/wait_for_exit",
        "terminal/kill",
        "terminal/release",
        "elicitation/create",
    }
)

# Agent→client notifications of ACP besides session/update (`_` extensions go through too).
_FORWARDED_NOTIFICATIONS = frozenset({"elicitation/complete"})
# Update kinds the router looks into; everything else is forwarded without a second look.
_WATCHED = frozenset({"usage_update", "current_mode_update", "config_option_update"})
# What an agent's session/load replays: muted when the client asked for resume.
_HISTORY = frozenset(
    {
        "user_message_chunk",
        "agent_message_chunk",
        "agent_thought_chunk",
        "tool_call",
        "tool_call_update",
        "plan",
    }
)


def _valid_usage(update: JsonObj) -> bool:
    used, size = update.get("used"), update.get("size")
    return (
        isinstance(used, int)
        and not isinstance(used, bool)
        and used >= 0
        and isinstance(size, int)
        and not isinstance(size, bool)
        and size >= 0
    )


class _Router:
    """Routes what the agent sends: updates to the host, requests to the client."""

    def __init__(self, agent: str, host: SessionHost | None) -> None:
        self.agent = agent
        self.host = host
        self.exited = anyio.Event()
        # Drop replayed history (messages, thoughts, tool calls, plans) but let state updates
        # (commands, mode, config, usage) through.
        self.mute_history = False
        # Set once the session is open: keeps made-up modes/config options in step.
        self.settings: AgentSettings | None = None
        self._bad_usage_logged = False
        self._dropped_logged = False
        # Set once the session is open (its agent session id known): text chunks skip the parse.
        self.fast: FastPath | None = None

    def on_line(self, line: bytes) -> bool:
        """The fast path (adapters/acp/fastpath.py): True when `line` was a text chunk and is
        published; False sends it through the parse path (`on_notification` and the rest)."""
        fast, host = self.fast, self.host
        if fast is None or host is None or self.mute_history:
            return False
        done = fast.rewrite(line)
        if done is None:
            return False
        host.emit_frame(done[0], done[1])
        return True

    async def on_notification(self, note: jsonrpc.Notification) -> None:
        host = self.host
        if host is None or not isinstance(note.params, dict):
            return
        if note.method == "session/update":
            update = note.params.get("update")
            kind = update.get("sessionUpdate") if isinstance(update, dict) else None
            if not isinstance(kind, str):
                # Not an update at all: forwarded, it would break every schema-checking client.
                self._dropped("a session/update without an update kind", note.params)
                host.touch()
                return
            if self.mute_history and kind in _HISTORY:
                host.touch()
                return
            if kind in _WATCHED and isinstance(update, dict):
                if kind == "usage_update" and not _valid_usage(update):
                    self._drop_usage(update)
                    host.touch()
                    return
                extra = self.settings.observe(update) if self.settings is not None else []
                note.params["sessionId"] = host.session_id
                host.emit_params(note.params)
                for more in extra:
                    host.emit(more)
                return
            note.params["sessionId"] = host.session_id
            host.emit_params(note.params)
        elif note.method in _FORWARDED_NOTIFICATIONS or note.method.startswith("_"):
            params = dict(note.params)
            if "sessionId" in params:
                params["sessionId"] = host.session_id
            host.notify_client(note.method, params)
        else:
            self._dropped(f"a notification the client has no use for ({note.method:.100})", note.params)

    def _dropped(self, what: str, params: Any) -> None:
        if not self._dropped_logged:
            self._dropped_logged = True
            log.warning("agent %s sent %s (dropped; logged once): %.200s", self.agent, what, params)

    def _drop_usage(self, update: JsonObj) -> None:
        # Seen from claude-agent-acp 0.23 behind a gateway that omits the cache counters:
        # `used: null` (NaN). Forwarding it would break every schema-checking client.
        if not self._bad_usage_logged:
            self._bad_usage_logged = True
            log.warning("agent %s sent an invalid usage_update (dropped): %.200s", self.agent, update)

    async def on_request(self, req: jsonrpc.Request) -> Any:
        host = self.host
        if host is None:
            raise RpcError(METHOD_NOT_FOUND, f"{req.method} is not available during a probe")
        if req.method not in FORWARDED and not req.method.startswith("_"):
            raise RpcError(METHOD_NOT_FOUND, f"unknown method: {req.method}")
        params = dict(req.params) if isinstance(req.params, dict) else {}
        params.pop("sessionId", None)
        return await host.request_client(req.method, params)

    def on_noise(self, line: bytes) -> None:
        # Banners, OAuth URLs, debug prints: logged and skipped, never forwarded, never fatal.
        log.warning("agent %s wrote a non-JSON-RPC line on stdout (skipped): %.200r", self.agent, line)

    def on_violation(self, what: str) -> RpcError:
        # Broken JSON-RPC (not mere noise): whatever waits on the agent — its turn — fails now
        # with the reason, instead of waiting for the stall timeout. The agent keeps running.
        log.warning("agent %s broke the protocol: it %s", self.agent, what)
        return AgentProtocolError(self.agent, what)
