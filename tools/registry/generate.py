"""Generates the ACP registry entry (agentclientprotocol/registry: one folder per agent with
`agent.json` and a 16x16 monochrome `icon.svg`) into `registry/<id>/`.

    python tools/registry/generate.py          # write registry/<id>/
    python tools/registry/generate.py --check  # exit 1 when the files are stale

The id `agent-bridge` is taken in the registry, hence `REGISTRY_ID` (README, ACP registry).
The distribution is uvx of this package at exactly this version; the args make Claude Code
the default agent, so `initialize` offers its login (terminal auth)."""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REGISTRY_ID = "agent-bridge-acp"
ARGS = ["--agent", "claude"]
OUT = ROOT / "registry" / REGISTRY_ID

# A bridge: two towers and a deck, drawn in the editor's text colour (currentColor).
ICON = """<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16" fill="none">
  <path d="M1 10h14M3 10V5M13 10V5M3 5q5 5 10 0M6 10V7.6M10 10V7.6" stroke="currentColor" stroke-width="1.5" stroke-linecap="round"/>
</svg>
"""


def agent_json() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    version = project["version"]
    entry = {
        "id": REGISTRY_ID,
        "name": "agent-bridge",
        "version": version,
        "description": project["description"],
        "license": project["license"],
        "distribution": {
            "uvx": {"package": f"{project['name']}=={version}", "cmd": "agent-bridge", "args": ARGS},
        },
    }
    return json.dumps(entry, indent=2) + "\n"


def main(argv: list[str]) -> int:
    files = {OUT / "agent.json": agent_json(), OUT / "icon.svg": ICON}
    if "--check" in argv:
        stale = [str(p) for p, text in files.items() if not p.exists() or p.read_text() != text]
        if stale:
            sys.stderr.write("stale: " + ", ".join(stale) + " (run tools/registry/generate.py)\n")
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
