"""The bridge's own `_bridge/*` methods (see spec/bridge-extensions.md)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from bridge.acp import files
from bridge.acp.connection import ClientConnection
from bridge.config import Policy
from bridge.core.events import SessionInfo
from bridge.core.manager import SessionManager
from bridge.core.metrics import Metrics
from bridge.diagnostics.redact import default as default_redactor
from bridge.diagnostics.redact import mask_mcp_servers
from bridge.errors import INVALID_PARAMS, METHOD_NOT_FOUND, RpcError
from bridge.lazy import lazy_module
from bridge.process.command import run_command
from bridge.rpc.dispatch import Handler
from bridge.store.base import Store, lease_error_data
from bridge.wire.types import JsonObj

if TYPE_CHECKING:
    import psutil

    from bridge.acp import params as P
else:
    # pydantic models: imported by the first request that parses them (bridge/lazy.py).
    P = lazy_module("bridge.acp.params")
    # Process figures for `_bridge/status` only.
    psutil = lazy_module("psutil")


class AcpServer(Protocol):
    """What the extensions use of the server that builds them (`bridge.acp.server.AcpServer`)."""

    manager: SessionManager
    store: Store
    policy: Policy

    async def agents_table(self) -> list[JsonObj]: ...


# What a shell answer carries of each stream (its tail), and what the log keeps (the start).
SHELL_OUTPUT_LIMIT = 1024 * 1024
SHELL_LOG_LIMIT = 4096


class Extensions:
    def __init__(self, server: AcpServer) -> None:
        self.server = server
        self.manager = server.manager
        self.store = server.store

    def table(self) -> dict[str, Handler]:
        return {
            "_bridge/agents": self.agents,
            "_bridge/session/info": self.info,
            "_bridge/session/events": self.events,
            "_bridge/session/metrics": self.metrics,
            "_bridge/session/update": self.update,
            "_bridge/session/shell": self.shell,
            "_bridge/session/read_file": self.read_file,
        }

    async def agents(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        return {"agents": await self.server.agents_table()}

    async def info(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.SessionParams, params)
        rec = await self.manager.record(p.sessionId)
        live = self.manager.sessions.get(rec.id)
        # A session another live daemon runs is shown running there, with its owner.
        holder = await self.manager.live_owner(rec) if live is None else None
        info: JsonObj = {
            "sessionId": rec.id,
            "agent": rec.agent,
            "cwd": rec.cwd,
            "status": live.status if live is not None else rec.status if holder is not None else "closed",
            "createdAt": rec.created_at,
            "updatedAt": rec.updated_at,
        }
        for key, value in (
            ("title", rec.title),
            ("parentId", rec.parent_id),
            ("agentSessionId", rec.agent_session_id),
            ("additionalDirectories", rec.additional_directories),
        ):
            if value is not None:
                info[key] = value
        info["archived"] = rec.archived
        if holder is not None:
            info.update(lease_error_data(holder))
        if self.store.failed is not None:
            info["warning"] = self.store.failed.message
        if live is not None and live.mcp is not None and live.mcp.servers:
            # What the agent says of the session's MCP servers (bridge/mcp/status.py).
            info["mcpServers"] = live.mcp.view()
        if live is not None and live.setup is not None and live.setup.meta:
            info["_meta"] = live.setup.meta
        return info

    async def events(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.EventsParams, params)
        rec = await self.manager.record(p.sessionId)
        await self.store.flush()
        page = await self.store.events(rec.id, p.after, p.limit + 1)
        events = [
            {"seq": e.seq, "at": e.at, "direction": e.direction, "message": _shown(e.message)}
            for e in page[: p.limit]
        ]
        result: JsonObj = {"events": events}
        if len(page) > p.limit:
            result["next"] = page[p.limit - 1].seq
        if self.store.failed is not None:
            result["warning"] = self.store.failed.message
        return result

    async def metrics(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.SessionParams, params)
        rec = await self.manager.record(p.sessionId)
        live = self.manager.sessions.get(rec.id)
        if live is None:
            # Not live here: what the catalog has (saved after every turn, by whichever daemon).
            return Metrics.from_json(rec.metrics).result()
        result = live.metrics.result()
        pid = live.agent.pid() if live.agent is not None else None
        if pid is not None:
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                procs = [proc, *proc.children(recursive=True)]
                rss = cpu = 0.0
                for q in procs:
                    with contextlib.suppress(psutil.Error):
                        rss += q.memory_info().rss
                        t = q.cpu_times()
                        cpu += t.user + t.system
                result["process"] = {"pid": pid, "rssBytes": int(rss), "cpuSeconds": round(cpu, 3)}
        return result

    async def update(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.UpdateSessionParams, params)
        rec = await self.manager.record(p.sessionId)
        fields: dict[str, Any] = {}
        if p.title is not None:
            fields["title"] = p.title
        if p.archived is not None:
            fields["archived"] = p.archived
        await self.manager.save(rec.id, **fields)
        live = self.manager.sessions.get(rec.id)
        if live is not None and p.title is not None:
            live.record.title = p.title
            live.emit_event(SessionInfo(title=p.title))
        return {}

    async def read_file(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.ReadFileParams, params)
        rec = await self.manager.record(p.sessionId)
        chunk = await files.read_file(
            p.path, rec.cwd, rec.additional_directories or [], offset=p.offset, limit=p.limit
        )
        live = self.manager.sessions.get(rec.id)
        if live is not None:
            # Which file was read, not its content (the log stays small).
            live.log("client", orjson.dumps({"method": "_bridge/session/read_file", "params": params}))
            live.log("bridge", orjson.dumps({"result": {"size": chunk.size, "read": len(chunk.data)}}))
        return {
            "content": files.encode(chunk, p.encoding),
            "encoding": p.encoding,
            "size": chunk.size,
            "truncated": chunk.truncated,
        }

    async def shell(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.ShellParams, params)
        rec = await self.manager.record(p.sessionId)
        if not self.server.policy.shell_allowed(rec.agent):
            raise RpcError(
                METHOD_NOT_FOUND,
                "_bridge/session/shell is off: it runs any command for any client holding the token; "
                f"set allow_shell = true in the config (globally, or under [agents.{rec.agent}]) to turn it on",
                {"method": "_bridge/session/shell", "enable": "allow_shell"},
            )
        cwd = p.cwd or rec.cwd
        if not cwd.startswith("/"):
            raise RpcError(INVALID_PARAMS, "invalid params: cwd: must be an absolute path", {"field": "cwd"})
        live = self.manager.sessions.get(rec.id)
        if live is not None:
            # A bounded record: the command may be long, and its output is never logged whole.
            logged = {**params, "command": _clip(p.command, SHELL_LOG_LIMIT)}
            live.log("client", orjson.dumps({"method": "_bridge/session/shell", "params": logged}))
        try:
            done = await run_command(
                ["/bin/sh", "-c", p.command], cwd=cwd, time_limit=p.timeoutMs / 1000, limit=SHELL_OUTPUT_LIMIT
            )
        except OSError as exc:
            raise RpcError(INVALID_PARAMS, f"cannot run the command in {cwd}: {exc.strerror}") from None
        if done.timed_out:
            if live is not None:
                live.log("bridge", orjson.dumps({"result": {"timedOut": True, "timeoutMs": p.timeoutMs}}))
            raise RpcError(-32013, f"command timed out after {p.timeoutMs} ms", {"timeoutMs": p.timeoutMs})
        assert done.exit_code is not None
        result: JsonObj = {
            "stdout": done.stdout.decode("utf-8", "replace"),
            "stderr": done.stderr.decode("utf-8", "replace"),
            "exitCode": done.exit_code,
            "truncated": done.truncated,
        }
        if done.truncated:
            result["stdoutBytes"] = done.stdout_size
            result["stderrBytes"] = done.stderr_size
        if live is not None:
            record = {
                "exitCode": done.exit_code,
                "stdout": _clip(result["stdout"], SHELL_LOG_LIMIT),
                "stderr": _clip(result["stderr"], SHELL_LOG_LIMIT),
                "stdoutBytes": done.stdout_size,
                "stderrBytes": done.stderr_size,
            }
            live.log("bridge", orjson.dumps({"result": record}))
        return result


def _shown(message: bytes) -> Any:
    msg = orjson.loads(message)
    # Rows written before MCP secrets were masked at logging time still hold them.
    if b'"mcpServers"' in message and isinstance(msg, dict) and "params" in msg:
        msg["params"] = mask_mcp_servers(msg.get("params"))
    # An agent may echo a session's MCP secrets back (in a result's `_meta`, a tool's output).
    redactor = default_redactor()
    if redactor.knows(message.decode("utf-8", "replace")):
        msg = redactor.known_values(msg)
    return msg


def _clip(text: str, limit: int) -> str:
    """The start of `text` with a note of how much was cut (log records stay small)."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters not logged]"
