"""Finding an agent's binary, the one way: on the PATH it will be started with plus the
bridge's own agent prefix (`envsetup.lookup_path`), with the reason when it is not usable.
Starting an agent (`agent_process`), `doctor`, the agent table and the capability cache
all ask this."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge import envsetup


@dataclass(frozen=True)
class Located:
    command: str
    path: str | None  # the resolved binary, None when missing or unusable
    problem: str | None = None  # "not_found" | "not_executable"
    searched: list[str] = field(default_factory=list)
    unusable: str | None = None  # the file of that name on PATH that is not executable


def locate(command: str, env: Mapping[str, str]) -> Located:
    """`command` as a path, or looked up on `env`'s PATH (the daemon's default without one)."""
    path_var = envsetup.lookup_path(env.get("PATH", os.defpath))
    searched = list(dict.fromkeys(p for p in path_var.split(os.pathsep) if p))
    if os.sep in command:
        if not os.path.exists(command):
            return Located(command, None, "not_found")
        if os.path.isdir(command) or not os.access(command, os.X_OK):
            return Located(command, None, "not_executable")
        return Located(command, command)
    found = shutil.which(command, path=path_var)
    if found is not None:
        return Located(command, found, searched=searched)
    # A file of that name that is not executable is a different problem with a different fix.
    for d in searched:
        if os.path.isfile(os.path.join(d, command)):
            return Located(command, None, "not_executable", searched, os.path.join(d, command))
    return Located(command, None, "not_found", searched)


def on_agent_path(command: str, agent_env: Mapping[str, str]) -> str | None:
    """Where `command` is on the PATH agents are started with (the agent's own `PATH`, else
    the login-shell additions and `path_prepend` once the daemon has resolved them), so this
    agrees with what a session would find."""
    environment = envsetup.current()
    path = agent_env.get("PATH") or (
        environment.path() if environment is not None else os.environ.get("PATH", os.defpath)
    )
    return locate(command, {"PATH": path}).path
