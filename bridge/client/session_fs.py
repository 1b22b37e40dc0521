"""The `fs/*` requests an agent sends a session whose client was created with `fs=True`:
read and write text files inside the session's directories, nothing outside them. Part of
`Session`."""

from __future__ import annotations

import os
from typing import Any

import anyio

from bridge.errors import INVALID_PARAMS, RESOURCE_NOT_FOUND, RpcError
from bridge.wire.types import JsonObj


class FsRequests:
    """Mixed into `Session` (bridge/client/session.py), which provides these."""

    cwd: str | None
    additional_directories: list[str] | None

    def _roots(self) -> list[str]:
        return [os.path.realpath(r) for r in [self.cwd or "", *(self.additional_directories or [])] if r]

    def _inside(self, path: Any) -> str:
        if not isinstance(path, str) or not os.path.isabs(path):
            raise RpcError(
                INVALID_PARAMS, "invalid params: path: must be an absolute path", {"field": "path"}
            )
        real = os.path.realpath(path)
        if not any(real == r or real.startswith(r.rstrip("/") + "/") for r in self._roots()):
            raise RpcError(INVALID_PARAMS, f"{path} is outside the session's directories", {"field": "path"})
        return real

    async def answer_fs(self, method: str, params: JsonObj) -> JsonObj:
        path = anyio.Path(self._inside(params.get("path")))
        if method == "fs/read_text_file":
            try:
                text = await path.read_text()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                raise RpcError(RESOURCE_NOT_FOUND, f"no such file: {params['path']}") from None
            line, limit = params.get("line"), params.get("limit")
            if isinstance(line, int) or isinstance(limit, int):
                lines = text.splitlines(keepends=True)
                start = max(0, (line if isinstance(line, int) else 1) - 1)
                end = start + limit if isinstance(limit, int) else None
                text = "".join(lines[start:end])
            return {"content": text}
        content = params.get("content")
        if not isinstance(content, str):
            raise RpcError(INVALID_PARAMS, "invalid params: content: must be a string", {"field": "content"})
        await path.parent.mkdir(parents=True, exist_ok=True)
        await path.write_text(content)
        return {}
