"""Agent detection: is each agent installed, where, and which version."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping

import anyio

from bridge import envsetup
from bridge.config import INSTALL_HINTS
from bridge.core.adapter import AgentSpec, JsonObj

VERSION_TIMEOUT = 5.0


def resolve(spec: AgentSpec) -> str | None:
    # The PATH agents are started with (login shell additions, path_prepend) when the
    # daemon has resolved it, so this agrees with what a session would find.
    environment = envsetup.current()
    path = spec.env.get("PATH") or (
        environment.path() if environment is not None else os.environ.get("PATH", os.defpath)
    )
    if os.sep in spec.command:
        return spec.command if os.access(spec.command, os.X_OK) else None
    return shutil.which(spec.command, path=path)


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


async def version_of(path: str) -> str | None:
    with contextlib.suppress(OSError, TimeoutError, subprocess.SubprocessError):
        with anyio.fail_after(VERSION_TIMEOUT):
            done = await anyio.run_process(
                [path, "--version"], check=False, stdin=subprocess.DEVNULL, start_new_session=True
            )
        if done.returncode == 0:
            out = (done.stdout or done.stderr).decode("utf-8", "replace").strip().splitlines()
            return out[0][:200] if out else None
    return None


async def describe_agents(agents: Mapping[str, AgentSpec], *, versions: bool = True) -> list[JsonObj]:
    rows: list[JsonObj] = []

    async def one(spec: AgentSpec, row: JsonObj) -> None:
        path = resolve(spec)
        row["installed"] = path is not None
        if path is not None:
            row["path"] = path
            if versions:
                v = npm_version(path) or await version_of(path)
                if v:
                    row["version"] = v
        elif spec.name in INSTALL_HINTS:
            row["install"] = INSTALL_HINTS[spec.name]

    async with anyio.create_task_group() as tg:
        for spec in agents.values():
            row: JsonObj = {
                "name": spec.name,
                "protocol": spec.protocol,
                "command": " ".join([spec.command, *spec.args]),
            }
            rows.append(row)
            tg.start_soon(one, spec, row)
    return rows
