"""Names every layer shares are defined in one module and imported from it, never redefined."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = {"JsonObj": "bridge/wire/types.py"}


def test_shared_aliases_are_defined_once() -> None:
    found: dict[str, list[str]] = {name: [] for name in HOME}
    for top in ("bridge", "adapters", "tests", "bench", "tools"):
        for path in sorted((ROOT / top).rglob("*.py")):
            for node in ast.parse(path.read_text()).body:
                targets = node.targets if isinstance(node, ast.Assign) else []
                if isinstance(node, ast.AnnAssign):
                    targets = [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and t.id in found:
                        found[t.id].append(path.relative_to(ROOT).as_posix())
    assert found == {name: [home] for name, home in HOME.items()}
