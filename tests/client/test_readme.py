"""The README's quick start runs as written: the Python program and the one-line CLI call,
with `claude` pointed at the fake ACP agent through `AGENT_BRIDGE_CONFIG` and an
`agent-bridge` on PATH that is what `pip install` makes of the console script."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from tests.client.support import client_config
from tests.conftest import ROOT, subprocess_env

pytestmark = pytest.mark.anyio

QUESTION = "What does this repository do?"


def quick_start() -> tuple[str, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    program = re.search(r"```python\n(.*?)```", section, re.S)
    shell = re.search(r"```sh\n(.*?)```", section, re.S)
    assert program and shell, "the README's Quick start needs a python and a sh block"
    return program.group(1), shell.group(1).strip()


def environment(tmp: Path) -> dict[str, str]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    script = bin_dir / "agent-bridge"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom bridge.__main__ import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return subprocess_env(
        AGENT_BRIDGE_CONFIG=str(client_config(tmp, agent="claude", default=False)),
        AGENT_BRIDGE_STATE_DIR=str(tmp / "state"),
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    )


async def run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(120):
        return await anyio.run_process(cmd, check=False, env=env, cwd=cwd)


async def test_the_quick_start_examples_run_as_written(tmp_path: Path) -> None:
    program, shell = quick_start()
    assert len(shell.splitlines()) == 1 and shell.startswith("agent-bridge prompt ")
    env = environment(tmp_path)
    project = tmp_path / "project"
    project.mkdir()

    done = await run([sys.executable, "-c", program], env, project)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == f"you said: {QUESTION}\n"

    done = await run(["/bin/sh", "-c", shell], env, project)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode() == f"you said: {QUESTION}\n"

    # Both ran in `project` with the agent named in the examples.
    listing = await run(["agent-bridge", "sessions", "--json"], env, project)
    rows = listing.stdout.decode().splitlines()
    assert len(rows) == 2 and all(f'"cwd": "{project}"' in r and '"agent": "claude"' in r for r in rows)


def test_every_test_named_in_the_client_docs_exists() -> None:
    """docs/client.md maps each seed method to the test that shows it working."""
    import ast

    docs = (ROOT / "docs" / "client.md").read_text()
    named = set(re.findall(r"`(test_\w+)::(test_\w+)`", docs))
    bare = set(re.findall(r"`(test_\w+)`", docs))
    assert len(named) >= 20
    defined: dict[str, set[str]] = {}
    for path in (ROOT / "tests" / "client").glob("test_*.py"):
        tree = ast.parse(path.read_text())
        defined[path.stem] = {
            n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
    missing = [f"{m}::{t}" for m, t in named if t not in defined.get(m, set())]
    assert missing == []
    everywhere = set().union(*defined.values())
    assert [t for t in bare if t not in everywhere and t not in defined] == []
