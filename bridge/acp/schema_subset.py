"""The part of the official `acp.schema` that the params models are made of, built alone.

`acp.schema` (generated from ACP's schema.json) defines ~290 pydantic models in one module, and
importing anything of the `acp` package imports all of them: ~210 ms of class construction on
this kind of machine even with their validators deferred, paid by the first `session/new`
(bench/README). The params models (bridge/acp/acp_params.py) are made of 34 of them. `load`
reads the module's source without importing the package, keeps the statements that define the
names asked for and, transitively, every name those refer to, and runs only them as a module
of their own (`MODULE`): the same class bodies and validators, in ~50 ms.

Where the source is not laid out as expected (not found, a statement of another kind, a name
asked for that it lacks), `load` imports `acp.schema` itself instead: slower, the same models.
tests/acp/test_schema_subset.py checks that the pinned SDK takes the short way and that every
model kept has the JSON schema of `acp.schema`'s own.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from types import ModuleType

MODULE = "bridge.acp.acp_schema_subset"
_PACKAGE = "acp"
log = logging.getLogger(__name__)


class _Unexpected(Exception):
    """The source is not what `load` knows how to cut: import the whole module instead."""


def load(*roots: str) -> ModuleType:
    """A module holding `roots` (names of `acp.schema`) and what they need; built once per
    process (a later call gets the same module, whatever it asks for)."""
    found = sys.modules.get(MODULE)
    if found is not None:
        return found
    try:
        return _build(roots)
    except (_Unexpected, OSError, SyntaxError, ImportError, NameError) as exc:
        sys.modules.pop(MODULE, None)
        log.info("acp.schema imported whole (its source could not be cut: %s)", exc)
        return importlib.import_module(f"{_PACKAGE}.schema")


def _build(roots: tuple[str, ...]) -> ModuleType:
    # find_spec of a top-level name locates the package without running its __init__.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _Unexpected(f"no {_PACKAGE} package")
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / "schema.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    defined, imports = _index(tree)
    kept = _needed(roots, defined)
    module = ModuleType(MODULE)
    module.__file__ = str(path)
    body: list[ast.stmt] = []
    for stmt in imports:
        if isinstance(stmt, ast.ImportFrom) and (stmt.module or "").split(".")[0] == _PACKAGE:
            # e.g. `from acp._deserialize import ...`: that file alone, not the package.
            sibling = _sibling(folder, stmt)
            for alias in stmt.names:
                setattr(module, alias.asname or alias.name, getattr(sibling, alias.name))
        else:
            body.append(stmt)
    body += sorted((defined[name] for name in kept), key=lambda s: s.lineno)
    code = compile(ast.Module(body=list(dict.fromkeys(body)), type_ignores=[]), str(path), "exec")
    # Registered first: pydantic resolves the annotations through sys.modules[cls.__module__].
    sys.modules[MODULE] = module
    exec(code, module.__dict__)  # the installed SDK's own source, a part of it
    return module


def _index(tree: ast.Module) -> tuple[dict[str, ast.stmt], list[ast.stmt]]:
    """Each top-level name with the statement defining it; the imports, in order."""
    defined: dict[str, ast.stmt] = {}
    imports: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            imports.append(stmt)
        elif isinstance(stmt, ast.ClassDef):
            defined[stmt.name] = stmt
        elif isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
            defined.update((t.id, stmt) for t in stmt.targets if isinstance(t, ast.Name))
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            defined[stmt.target.id] = stmt
        else:  # a call such as `Model.model_rebuild()` would need ordering rules of its own
            raise _Unexpected(f"a top-level {type(stmt).__name__} at line {stmt.lineno}")
    return defined, imports


def _needed(roots: tuple[str, ...], defined: dict[str, ast.stmt]) -> set[str]:
    """`roots` and every top-level name their statements refer to, transitively: names in
    code and annotations, and quoted forward references."""
    missing = [name for name in roots if name not in defined]
    if missing:
        raise _Unexpected(f"not defined: {', '.join(missing)}")
    kept: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept.add(name)
        for node in ast.walk(defined[name]):
            ref = node.id if isinstance(node, ast.Name) else getattr(node, "value", None)
            if isinstance(ref, str) and ref in defined and ref not in kept:
                todo.append(ref)
    return kept


def _sibling(folder: Path, stmt: ast.ImportFrom) -> ModuleType:
    name = (stmt.module or "").split(".", 1)[-1]
    if stmt.level or "." in name:
        raise _Unexpected(f"import of {stmt.module!r}")
    private = f"{MODULE}.{name}"
    found = sys.modules.get(private)
    if found is not None:
        return found
    spec = importlib.util.spec_from_file_location(private, folder / f"{name}.py")
    if spec is None or spec.loader is None:
        raise _Unexpected(f"no {folder / name}.py")
    sibling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sibling)
    sys.modules[private] = sibling
    return sibling
