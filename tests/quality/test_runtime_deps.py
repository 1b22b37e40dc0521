"""Every third-party package the daemon or the adapters import is a runtime dependency.

A package that only the test extra brings (agent-client-protocol was one) passes the whole
suite and then fails a user's `pip install .` at the first request that needs it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWN = {"bridge", "adapters"}


def _imported_top_levels() -> dict[str, str]:
    """Top-level module → one file importing it, over bridge/ and adapters/."""
    found: dict[str, str] = {}
    for package in OWN:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def _normalize(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _closure(roots: set[str]) -> set[str]:
    """The declared distributions and what they require (without extras): a module that a
    declared dependency pins for its own API (jsonrpcserver's oslash results, mcp's httpx2
    client) arrives with it."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        dist = todo.pop()
        if dist in seen:
            continue
        seen.add(dist)
        try:
            reqs = requires(dist) or []
        except PackageNotFoundError:
            continue
        for req in reqs:
            if "extra ==" in req:
                continue
            todo.append(_normalize(re.split(r"[\[<>=!~; (]", req, maxsplit=1)[0]))
    return seen


def test_every_third_party_import_is_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {_normalize(re.split(r"[\[<>=!~; ]", d, maxsplit=1)[0]) for d in project["dependencies"]}
    installed = _closure(declared)
    providers = packages_distributions()
    missing = []
    for module, where in _imported_top_levels().items():
        if module in OWN or module in sys.stdlib_module_names or module == "__future__":
            continue
        dists = {_normalize(d) for d in providers.get(module, [])}
        assert dists, f"{module} (imported by {where}) is not installed: unknown distribution"
        if not dists & installed:
            missing.append(f"{module} ({where}) from {sorted(dists)}")
    assert not missing, f"imported by the daemon but not in [project.dependencies]: {missing}"
