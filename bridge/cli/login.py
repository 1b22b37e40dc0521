"""`agent-bridge login AGENT` (and `agent-bridge [serve] --login AGENT`, what an editor's
ACP terminal auth runs): the agent's interactive login in this terminal, with the agent's
configured command and environment, so its credentials land where its sessions look.
The exit code is the login's own (ACP: zero means it worked)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from bridge.acp import auth
from bridge.config import INSTALL_HINTS, ConfigFile, agent_table
from bridge.process.lookup import locate


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    if sub:
        parser.add_argument("login_agent", metavar="agent", help="the agent to log in (e.g. claude, codex)")


def login(name: str, config: ConfigFile) -> int:
    table = agent_table(config)
    spec = table.get(name)
    if spec is None:
        sys.stderr.write(f"agent-bridge: unknown agent {name!r}; known: {', '.join(sorted(table))}\n")
        return 2
    argv = auth.login_argv(spec, auth.login_args(os.environ))
    if argv is None:
        sys.stderr.write(f"agent-bridge: {name} has no login the bridge knows how to run\n")
        return 2
    env = {**os.environ, **spec.env}
    env.pop(auth.LOGIN_ARGS_ENV, None)
    exe = locate(argv[0], {"PATH": env.get("PATH") or os.environ.get("PATH", os.defpath)}).path
    if exe is None:
        hint = INSTALL_HINTS.get(name)
        sys.stderr.write(f"agent-bridge: {argv[0]!r} is not installed" + (f": {hint}" if hint else "") + "\n")
        return 127
    sys.stderr.write(f"agent-bridge: running {' '.join(argv)}\n")
    sys.stderr.flush()
    # The terminal is the user's: stdin, stdout and stderr are inherited as they are.
    return subprocess.run([exe, *argv[1:]], env=env, check=False).returncode


def run(args: argparse.Namespace, config: ConfigFile | None, state_dir: str) -> int:
    return login(args.login_agent, config or ConfigFile())
