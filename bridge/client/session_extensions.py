"""A session handle's bridge extensions (`_bridge/session/*`): info, metrics, title and
archive, shell, workspace files, the durable log and what is rebuilt from it (messages, plan,
artifacts). Part of `Session`."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

from bridge.client import history
from bridge.client.channel import Daemon
from bridge.client.errors import NotSupported
from bridge.client.results import Artifact, Event, EventPage, Message, Metrics, SessionInfo, ShellResult
from bridge.client.updates import PlanEntry
from bridge.wire.types import JsonObj


class Extensions:
    """Mixed into `Session` (bridge/client/session.py), which provides these."""

    id: str
    channel: Daemon[Any]
    agent: str | None
    cwd: str | None
    agent_session_id: str | None
    title: str | None

    async def info(self) -> SessionInfo:
        """`_bridge/session/info`: agent, cwd, title, status, times, parent, archived."""
        info = await self.channel.get_info(self.id)
        self.agent = info.agent
        self.cwd = self.cwd or info.cwd
        self.agent_session_id = info.agent_session_id or self.agent_session_id
        self.title = info.title
        return info

    async def metrics(self) -> Metrics:
        return Metrics.model_validate(
            await self.channel.request("_bridge/session/metrics", {"sessionId": self.id})
        )

    async def update(self, *, title: str | None = None, archived: bool | None = None) -> None:
        """Set the title and/or the archived flag (`_bridge/session/update`)."""
        params: JsonObj = {"sessionId": self.id}
        if title is not None:
            params["title"] = title
        if archived is not None:
            params["archived"] = archived
        await self.channel.request("_bridge/session/update", params)
        if title is not None:
            self.title = title

    async def archive(self, archived: bool = True) -> None:
        await self.update(archived=archived)

    # `timeout` is the daemon's limit for the command, not a wait of ours.
    async def shell(
        self,
        command: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        cwd: str | None = None,
    ) -> ShellResult:
        """Run `command` with /bin/sh in the session's cwd on the daemon's host; no model
        involved. `timeout` in seconds (the daemon's default is 60). Off unless the daemon's
        config sets `allow_shell = true` (else `MethodNotFound` saying so)."""
        params: JsonObj = {"sessionId": self.id, "command": command}
        if timeout is not None:
            params["timeoutMs"] = max(1, int(timeout * 1000))
        if cwd is not None:
            params["cwd"] = cwd
        r = await self.channel.request("_bridge/session/shell", params)
        return ShellResult(
            stdout=r["stdout"],
            stderr=r["stderr"],
            exit_code=r["exitCode"],
            truncated=bool(r.get("truncated")),
        )

    async def read_bytes(self, path: str) -> bytes:
        """A file of the session's workspace (its cwd and additional directories; relative
        paths from the cwd), up to 4 MiB, read with `_bridge/session/read_file`."""
        r = await self.channel.request(
            "_bridge/session/read_file", {"sessionId": self.id, "path": path, "encoding": "base64"}
        )
        if r["truncated"]:
            raise NotSupported(f"{path} is larger than {history.READ_LIMIT} bytes ({r['size']} bytes)")
        return base64.b64decode(r["content"])

    async def read_file(self, path: str) -> str:
        """`read_bytes()` decoded as UTF-8."""
        return (await self.read_bytes(path)).decode("utf-8")

    async def events(self, *, after: int = 0, limit: int = 100) -> EventPage:
        return await self.channel.get_events(self.id, after=after, limit=limit)

    def iter_events(self, *, after: int = 0) -> AsyncIterator[Event]:
        return self.channel.iter_events(self.id, after=after)

    async def messages(self) -> list[Message]:
        """The conversation rebuilt from the durable log: user prompts and agent answers."""
        return await history.messages(self.iter_events())

    async def todos(self) -> list[PlanEntry]:
        """The agent's latest plan (empty if it never sent one)."""
        return await history.latest_plan(self.iter_events())

    async def artifacts(self) -> list[Artifact]:
        """Resources the agent produced in this session (`resource_link` / `resource`)."""
        return await history.artifacts(self.iter_events())

    async def get_artifact_bytes(self, key: str) -> bytes:
        found = {a.key: a for a in await self.artifacts()}
        art = found.get(key) or next((a for a in found.values() if a.uri == key), None)
        if art is None:
            raise NotSupported(
                f"no artifact {key!r} in session {self.id} (artifacts: {', '.join(found) or 'none'})"
            )
        if art.text is not None:
            return art.text.encode()
        if art.blob is not None:
            return base64.b64decode(art.blob)
        path = history.file_uri_path(art.uri)
        if path is None:
            raise NotSupported(f"artifact {key!r} is at {art.uri}, which the bridge cannot fetch")
        return await self.read_bytes(path)

    async def get_artifact(self, key: str) -> str:
        return (await self.get_artifact_bytes(key)).decode("utf-8")
