"""`agent-bridge agents`: the known agents, how each is driven, installed or not."""

from __future__ import annotations

import argparse
import json
import sys

import anyio

from bridge.agents import describe_agents
from bridge.config import ConfigFile, agent_table


def add_arguments(parser: argparse.ArgumentParser, *, sub: bool) -> None:
    return None


def run(args: argparse.Namespace, config: ConfigFile, state_dir: str) -> int:
    rows = anyio.run(describe_agents, agent_table(config))
    if args.json:
        sys.stdout.write(json.dumps({"agents": rows}, indent=2) + "\n")
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        state = f"installed {r.get('version', '')}".strip() if r["installed"] else "not installed"
        where = r.get("path") or r.get("install", "")
        sys.stdout.write(f"{r['name']:<{width}}  {r['protocol']:<6}  {r['command']:<28}  {state}  {where}\n")
    return 0
