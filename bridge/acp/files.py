"""`_bridge/session/read_file`: a file of the session's workspace, without a shell.

Confined to the session's cwd and additional directories. The requested path is resolved
(symlinks followed, `..` applied) and must land inside one of those roots, compared as
paths, never as string prefixes (`/srv/repo-evil` is not inside `/srv/repo`). The file is
then opened and the opened descriptor checked again (`/proc/self/fd`), so a symlink swapped
in between the check and the open cannot lead outside. Only regular files are read (a FIFO
or a device would block or never end), at most `MAX_READ` bytes per call.
"""

from __future__ import annotations

import base64
import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import anyio

from bridge.errors import INVALID_PARAMS, RpcError

MAX_READ = 4 * 1024 * 1024


@dataclass(frozen=True)
class FileChunk:
    data: bytes
    size: int  # the whole file's
    truncated: bool  # the file goes on after `data`


def _refuse(path: str, why: str, reason: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"{path!r} {why}", {"field": "path", "path": path, "reason": reason})


def _inside(path: str, roots: list[str]) -> bool:
    p = Path(path)
    return any(p == Path(r) or p.is_relative_to(r) for r in roots)


def resolve(path: str, cwd: str, directories: list[str]) -> str:
    """The real path `path` names, when it is inside the session's roots (else -32602)."""
    if "\0" in path:
        raise _refuse(path, "is not a valid path", "invalid")
    roots = [os.path.realpath(r) for r in (cwd, *directories)]
    real = os.path.realpath(os.path.join(cwd, path))
    if not _inside(real, roots):
        raise _refuse(
            path, "is outside the session's directories (its cwd and additional directories)", "outside"
        )
    return real


def _read(path: str, real: str, roots: list[str], offset: int, limit: int) -> FileChunk:
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise _refuse(path, "does not exist (no such file)", "not_found") from None
    except IsADirectoryError:
        raise _refuse(path, "is a directory", "directory") from None
    except OSError as exc:
        raise _refuse(path, f"cannot be read: {exc.strerror}", "unreadable") from None
    try:
        # What was opened, not what was checked: a component swapped for a symlink meanwhile.
        with contextlib.suppress(OSError):
            opened = os.readlink(f"/proc/self/fd/{fd}")
            if not _inside(opened, roots):
                raise _refuse(path, "is outside the session's directories", "outside")
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise _refuse(path, "is a directory", "directory")
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, "is not a regular file", "not_regular")
        chunks: list[bytes] = []
        got = 0
        while got < limit:
            chunk = os.pread(fd, min(limit - got, 1024 * 1024), offset + got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        data = b"".join(chunks)
        return FileChunk(data, st.st_size, offset + len(data) < st.st_size)
    finally:
        os.close(fd)


def read_sync(path: str, cwd: str, directories: list[str], offset: int, limit: int) -> FileChunk:
    real = resolve(path, cwd, directories)
    roots = [os.path.realpath(r) for r in (cwd, *directories)]
    return _read(path, real, roots, offset, min(limit, MAX_READ))


async def read_file(
    path: str, cwd: str, directories: list[str], *, offset: int = 0, limit: int = MAX_READ
) -> FileChunk:
    # Resolving and reading touch the disk: a slow one must not stall the event loop.
    return await anyio.to_thread.run_sync(read_sync, path, cwd, directories, offset, limit)


def encode(chunk: FileChunk, encoding: str) -> str:
    if encoding == "base64":
        return base64.b64encode(chunk.data).decode()
    return chunk.data.decode("utf-8", "replace")
