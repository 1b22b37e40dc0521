"""`agent-bridge mcp list` / `agent-bridge mcp check [NAME]`: the MCP servers wired in the config
(`[mcp_servers.NAME]`, `[agents.AGENT.mcp_servers.NAME]`) and, for `check`, each one started with
the `mcp` client: its tools, or exactly what is wrong with a fix. Exit 1 when a check fails.
Values (env, headers) are never printed: only their names."""

from __future__ import annotations

import argparse
import json
import os
import sys

from bridge.config import ConfigFile
from bridge.mcp.config import McpServerEntry


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    if not sub:
        return
    parser.add_argument(
        "action", choices=("list", "check"), help="list the configured servers, or start and check them"
    )
    parser.add_argument("name", nargs="?", help="check only this server")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds to wait for each server (default 15)"
    )


def run(args: argparse.Namespace, config: ConfigFile, state_dir: str) -> int:
    from bridge.mcp.check import entries, target

    found = entries(config.mcp_servers, {n: a.mcp_servers for n, a in config.agents.items()})
    if args.name is not None:
        found = [e for e in found if e[1] == args.name]
        if not found:
            sys.stderr.write(f"agent-bridge mcp: no MCP server {args.name!r} in the config\n")
            return 2
    if args.action == "list":
        rows = [
            {
                "name": name,
                "scope": scope,
                "transport": entry.kind,
                "target": target(entry),
                "env": sorted(entry.env or {}),
                "headers": sorted(entry.headers or {}),
            }
            for scope, name, entry in found
        ]
        if args.json:
            sys.stdout.write(json.dumps({"mcpServers": rows}, indent=2) + "\n")
        elif not rows:
            sys.stdout.write("no MCP servers configured (add [mcp_servers.NAME] to the config; see README)\n")
        for r in rows if not args.json else []:
            extra = "".join(f"  {k}: {', '.join(r[k])}" for k in ("env", "headers") if r[k])
            sys.stdout.write(f"{r['name']:<16} {r['transport']:<5}  {r['target']}  [{r['scope']}]{extra}\n")
        return 0
    # Commands are looked up as the agents will: `path_prepend` first.
    environ = dict(os.environ)
    environ["PATH"] = os.pathsep.join([*config.path_prepend, environ.get("PATH", "")])
    return _check(args, found, environ)


def _check(
    args: argparse.Namespace, found: list[tuple[str, str, McpServerEntry]], environ: dict[str, str]
) -> int:
    import anyio

    from bridge.diagnostics.redact import default
    from bridge.mcp.check import DEFAULT_TIMEOUT, ServerCheck, check

    results: list[ServerCheck] = []

    async def main() -> None:
        async def one(scope: str, name: str, entry: McpServerEntry) -> None:
            results.append(await check(scope, name, entry, environ, args.timeout or DEFAULT_TIMEOUT))

        async with anyio.create_task_group() as tg:
            for scope, name, entry in found:
                tg.start_soon(one, scope, name, entry)

    anyio.run(main)
    order = {(scope, name): i for i, (scope, name, _) in enumerate(found)}
    results.sort(key=lambda r: order[(r.scope, r.name)])
    redact = default().text
    if args.json:
        sys.stdout.write(
            json.dumps(default().value({"mcpServers": [r.to_json() for r in results]}), indent=2) + "\n"
        )
    elif not results:
        sys.stdout.write("no MCP servers configured (add [mcp_servers.NAME] to the config; see README)\n")
    for r in results if not args.json else []:
        mark = "ok" if r.ok else "FAIL"
        sys.stdout.write(
            f"{mark:<4}  {r.name:<16} {r.transport:<5}  {redact(r.summary)}  ({r.seconds:g} s)\n"
        )
        if r.ok and r.tools:
            sys.stdout.write(f"      tools: {', '.join(r.tools)}\n")
        if r.fix and not r.ok:
            sys.stdout.write(f"      fix: {redact(r.fix)}\n")
    return 0 if all(r.ok for r in results) else 1
