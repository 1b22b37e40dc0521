"""Which version an agent's binary is, the one way: its npm package.json when it is an
npm-installed CLI (instant, and it works for CLIs without `--version`), else `BINARY
--version`, first line; read once per binary file (path, size and mtime) per daemon. The
agent table, `doctor` and the session catalog all ask this."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

import anyio

from bridge import timeouts

VERSION_TIMEOUT = timeouts.VERSION_TIMEOUT


def npm_version(path: str) -> str | None:
    """The version of the npm package whose `bin` entry `path` is (through npm's symlink),
    read from its package.json: instant, and it works for CLIs without `--version` (the
    Zed adapters: claude-agent-acp prints nothing, codex-acp rejects the flag)."""
    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    for _ in range(4):  # bin/x.js, dist/x.js, bundle/x.js: the package root is close
        manifest = os.path.join(folder, "package.json")
        if os.path.isfile(manifest):
            try:
                with open(manifest, encoding="utf-8") as f:
                    data = json.load(f)
            except (OSError, ValueError):
                return None
            bins = data.get("bin") if isinstance(data, dict) else None
            targets = list(bins.values()) if isinstance(bins, dict) else [bins]
            for target in targets:
                if isinstance(target, str) and os.path.realpath(os.path.join(folder, target)) == real:
                    version = data.get("version")
                    return version if isinstance(version, str) else None
            return None
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return None


@dataclass(frozen=True)
class VersionResult:
    version: str | None
    exit_code: int | None = None
    output: str = ""  # stderr/stdout tail when it failed
    timed_out: bool = False


_versions: dict[tuple[str, int, int], VersionResult] = {}


def _key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


async def version_of(path: str, env: Mapping[str, str], seconds: float = VERSION_TIMEOUT) -> VersionResult:
    """`path --version`, first line. Cached per binary file."""
    key = _key(path)
    if key is not None and key in _versions:
        return _versions[key]
    # An npm-installed CLI: its package.json says it at no cost (`claude --version` is a
    # second full start of Claude Code, beside the session's own).
    packaged = npm_version(path)
    result = VersionResult(packaged) if packaged else await _run_version(path, env, seconds)
    if key is not None and not result.timed_out:
        _versions[key] = result
    return result


async def _run_version(path: str, env: Mapping[str, str], seconds: float) -> VersionResult:
    try:
        with anyio.fail_after(seconds):
            done = await anyio.run_process(
                [path, "--version"],
                check=False,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                start_new_session=True,
            )
    except TimeoutError:
        return VersionResult(None, timed_out=True)
    except OSError as exc:
        return VersionResult(None, output=str(exc.strerror or exc))
    out = (done.stdout or b"").decode("utf-8", "replace").strip()
    err = (done.stderr or b"").decode("utf-8", "replace").strip()
    if done.returncode == 0 and (out or err):
        first = (out or err).splitlines()[0].strip()
        return VersionResult(first[:200], 0)
    return VersionResult(None, done.returncode, (err or out)[-2000:])


def cached_version(path: str) -> str | None:
    key = _key(path)
    result = _versions.get(key) if key is not None else None
    return result.version if result is not None else None
