"""`agent-bridge install AGENT [--version V]`, `install --list`, `uninstall AGENT`: a
built-in agent's CLI in the bridge's own npm prefix (`<data-dir>/agents`, see
`bridge.envsetup.agents_prefix`), found by the daemon after the user's PATH.

npm runs as the current user into that prefix: no global install, no root. Only these
commands use the network (npm's registry, or none with `--from TARBALL`)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import Any

from bridge.agents import PACKAGES, Package, package_named
from bridge.config import ConfigFile
from bridge.envsetup import agents_bin, agents_prefix
from bridge.process.versions import npm_version

VERIFY_TIMEOUT = 30.0
NPM_FLAGS = ["--no-audit", "--no-fund", "--no-update-notifier", "--save-exact"]


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    if not sub:
        return
    parser.add_argument("agent", nargs="?", help="built-in agent (e.g. claude, codex, gemini, qwen)")
    parser.add_argument("--version", dest="agent_version", help="the version to install (default: newest tested)")
    parser.add_argument("--from", dest="source", metavar="TARBALL", help="install from a local npm package file")
    parser.add_argument("--list", action="store_true", help="list the installable agents")


def _say(text: str) -> None:
    sys.stderr.write(f"agent-bridge: {text}\n")
    sys.stderr.flush()


def _pick(args: argparse.Namespace) -> Package | None:
    pkg = package_named(args.agent) if args.agent else None
    if pkg is None:
        known = ", ".join(PACKAGES)
        _say(f"unknown agent {args.agent!r}; installable: {known}" if args.agent else f"name an agent: {known}")
    return pkg


def _installed(pkg: Package) -> str | None:
    path = os.path.join(agents_bin(), pkg.bin)
    return npm_version(path) if os.path.exists(path) else None


def _list(as_json: bool) -> int:
    rows: list[dict[str, Any]] = [
        {
            "agent": p.agent,
            "package": p.package,
            "aliases": list(p.aliases),
            "tested": [p.oldest, p.newest],
            "installed": _installed(p),
        }
        for p in PACKAGES.values()
    ]
    if as_json:
        sys.stdout.write(json.dumps({"prefix": agents_prefix(), "agents": rows}, indent=2) + "\n")
        return 0
    sys.stdout.write(f"installs into {agents_prefix()}\n")
    for r in rows:
        have = f"installed {r['installed']}" if r["installed"] else "not installed"
        tested = r["tested"][0] if r["tested"][0] == r["tested"][1] else "..".join(r["tested"])
        sys.stdout.write(f"{r['agent']:<11}  {r['package']:<38}  tested {tested:<16}  {have}\n")
    return 0


def _npm(argv: list[str]) -> int:
    npm = shutil.which("npm")
    if npm is None:
        _say("npm was not found on PATH: install Node.js (which brings npm) first")
        return 1
    prefix = agents_prefix()
    os.makedirs(prefix, exist_ok=True)
    # npm's own progress and errors go to our stderr; stdout stays for results.
    done = subprocess.run([npm, *argv, "--prefix", prefix, *NPM_FLAGS], stdout=sys.stderr, check=False)
    return done.returncode


def _verify(pkg: Package) -> int:
    path = os.path.join(agents_bin(), pkg.bin)
    if not os.access(path, os.X_OK):
        _say(f"npm finished but {path} is missing or not executable")
        return 1
    version = npm_version(path)
    if pkg.answers_version:
        try:
            done = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=VERIFY_TIMEOUT,
                stdin=subprocess.DEVNULL, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _say(f"{path} --version did not answer: {exc}")
            return 1
        if done.returncode != 0:
            _say(f"{path} --version failed (exit code {done.returncode}): {(done.stderr or done.stdout).strip()[-500:]}")
            return 1
        version = version or (done.stdout.strip().splitlines() or [""])[0]
    _say(f"{pkg.agent} {version or ''} is ready: {path}".replace("  ", " "))
    return 0


def run(args: argparse.Namespace, config: ConfigFile | None, state_dir: str) -> int:
    if args.list:
        return _list(bool(args.json))
    pkg = _pick(args)
    if pkg is None:
        return 2
    target = args.source or f"{pkg.package}@{args.agent_version or pkg.newest}"
    _say(f"installing {target} into {agents_prefix()} (npm)")
    code = _npm(["install", target])
    if code != 0:
        _say(f"npm install failed (exit code {code})")
        return 1
    _say(f"checking that {pkg.bin} answers")
    return _verify(pkg)


def run_uninstall(args: argparse.Namespace, config: ConfigFile | None, state_dir: str) -> int:
    pkg = _pick(args)
    if pkg is None:
        return 2
    present = [n for n in (pkg.package, *pkg.aliases) if os.path.isdir(os.path.join(agents_prefix(), "node_modules", n))]
    if not present:
        _say(f"{pkg.agent} is not installed in {agents_prefix()} (nothing to do)")
        return 0
    _say(f"removing {', '.join(present)} from {agents_prefix()}")
    code = _npm(["uninstall", *present])
    if code != 0:
        _say(f"npm uninstall failed (exit code {code})")
        return 1
    return 0
