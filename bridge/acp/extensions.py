"""The bridge's own `_bridge/*` methods (see spec/bridge-extensions.md)."""

from __future__ import annotations

import contextlib
import subprocess
from typing import TYPE_CHECKING, Any

import anyio
import orjson
import psutil

from bridge.acp import params as P
from bridge.acp.connection import ClientConnection
from bridge.acp.replay import replay_to
from bridge.core.adapter import JsonObj
from bridge.errors import INVALID_PARAMS, RpcError
from bridge.rpc.dispatch import Handler
from bridge.store.base import lease_error_data

if TYPE_CHECKING:
    from bridge.acp.server import AcpServer

SHELL_OUTPUT_LIMIT = 1024 * 1024


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
            "_bridge/session/attach": self.attach,
            "_bridge/session/metrics": self.metrics,
            "_bridge/session/update": self.update,
            "_bridge/session/shell": self.shell,
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
        if live is not None and live.setup is not None and live.setup.meta:
            info["_meta"] = live.setup.meta
        return info

    async def events(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.EventsParams, params)
        rec = await self.manager.record(p.sessionId)
        await self.store.flush()
        page = await self.store.events(rec.id, p.after, p.limit + 1)
        events = [
            {"seq": e.seq, "at": e.at, "direction": e.direction, "message": orjson.loads(e.message)}
            for e in page[: p.limit]
        ]
        result: JsonObj = {"events": events}
        if len(page) > p.limit:
            result["next"] = page[p.limit - 1].seq
        if self.store.failed is not None:
            result["warning"] = self.store.failed.message
        return result

    async def attach(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.AttachParams, params)
        rec = await self.manager.record(p.sessionId)

        def follow() -> None:
            live = self.manager.sessions.get(rec.id)
            if live is not None and live.owner is not conn and conn not in live.followers:
                live.followers.append(conn)
                conn.following.add(rec.id)

        # Paced (a long history never overflows the connection); the live stream is joined
        # exactly where the replay ends.
        session = self.manager.sessions.get(rec.id)
        last = await replay_to(
            conn,
            self.store,
            rec.id,
            p.after,
            live=(lambda: session.last_seq) if session is not None else None,
            follow=follow,
        )
        return {"sessionId": rec.id, "live": rec.id in self.manager.sessions, "cursor": last}

    async def metrics(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.SessionParams, params)
        rec = await self.manager.record(p.sessionId)
        live = self.manager.sessions.get(rec.id)
        if live is None:
            return {"turns": 0, "messages": 0, "toolCalls": 0, "toolUsage": {}, "tokens": _zero_tokens()}
        m = live.metrics
        result: JsonObj = {
            "turns": m.turns,
            "messages": m.messages,
            "toolCalls": m.tool_calls,
            "toolUsage": dict(m.tool_usage),
            "tokens": dict(m.tokens),
        }
        if m.cost_usd is not None:
            result["costUsd"] = m.cost_usd
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
            live.emit({"sessionUpdate": "session_info_update", "title": p.title})
        return {}

    async def shell(self, conn: ClientConnection, params: JsonObj) -> JsonObj:
        p = P.parse(P.ShellParams, params)
        rec = await self.manager.record(p.sessionId)
        cwd = p.cwd or rec.cwd
        if not cwd.startswith("/"):
            raise RpcError(INVALID_PARAMS, "invalid params: cwd: must be an absolute path", {"field": "cwd"})
        live = self.manager.sessions.get(rec.id)
        if live is not None:
            live.log("client", orjson.dumps({"method": "_bridge/session/shell", "params": params}))
        try:
            with anyio.fail_after(p.timeoutMs / 1000):
                done = await anyio.run_process(
                    ["/bin/sh", "-c", p.command],
                    cwd=cwd,
                    check=False,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                )
        except TimeoutError:
            raise RpcError(
                -32013, f"command timed out after {p.timeoutMs} ms", {"timeoutMs": p.timeoutMs}
            ) from None
        except OSError as exc:
            raise RpcError(INVALID_PARAMS, f"cannot run the command in {cwd}: {exc.strerror}") from None
        result = {
            "stdout": done.stdout[-SHELL_OUTPUT_LIMIT:].decode("utf-8", "replace"),
            "stderr": done.stderr[-SHELL_OUTPUT_LIMIT:].decode("utf-8", "replace"),
            "exitCode": done.returncode,
        }
        if live is not None:
            live.log("bridge", orjson.dumps({"result": result}))
        return result


def _zero_tokens() -> JsonObj:
    return {"input": 0, "output": 0, "cachedRead": 0, "cachedWrite": 0, "total": 0}
