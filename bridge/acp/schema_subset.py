"""The part of the official `acp.schema` that the params models are made of, built alone.

`acp.schema` (generated from ACP's schema.json) defines ~290 pydantic models in one module, and
importing anything of the `acp` package imports all of them: ~210 ms of class construction on
this kind of machine even with their validators deferred, paid by the first `session/new`
(bench/README). The params models (bridge/acp/acp_params.py) are made of 34 of them. `load`
reads the module's source without importing the package, keeps the statements that define the
names asked for and, transitively, every name those refer to, and runs only them as a module
of their own (`MODULE`): the same class bodies and validators, in ~40 ms.

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
import re
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
        log.info("acp.schema imported whole (its source could not be cut: %s)", exc)
        return importlib.import_module(f"{_PACKAGE}.schema")


def _build(roots: tuple[str, ...]) -> ModuleType:
    # find_spec of a top-level name locates the package without running its __init__.
    spec = importlib.util.find_spec(_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _Unexpected(f"no {_PACKAGE} package")
    folder = Path(next(iter(spec.submodule_search_locations)))
    path = folder / "schema.py"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    chunks = _statements(lines)
    imports = [c for c in chunks if c.name is None]
    defined = {c.name: c for c in chunks if c.name is not None}
    module = ModuleType(MODULE)
    module.__file__ = str(path)
    kept: list[_Chunk] = []
    for chunk in imports:
        stmt = chunk.tree()
        if isinstance(stmt, ast.ImportFrom) and (stmt.module or "").split(".")[0] == _PACKAGE:
            # e.g. `from acp._deserialize import ...`: that file alone, not the package.
            sibling = _sibling(folder, stmt)
            for alias in stmt.names:
                setattr(module, alias.asname or alias.name, getattr(sibling, alias.name))
        else:
            kept.append(chunk)
    kept += _needed(roots, defined)
    # The file's own line numbers (blank lines in place of what is left out), for tracebacks.
    source = ["\n"] * len(lines)
    for chunk in kept:
        source[chunk.start : chunk.end] = lines[chunk.start : chunk.end]
    code = compile("".join(source), str(path), "exec")
    # Registered first: pydantic resolves the annotations through sys.modules[cls.__module__].
    sys.modules[MODULE] = module
    try:
        exec(code, module.__dict__)  # the installed SDK's own source, a part of it
    except BaseException:
        del sys.modules[MODULE]  # never a half-built module for the next caller
        raise
    return module


class _Chunk:
    """One top-level statement of the source: lines [start, end), parsed when first needed."""

    __slots__ = ("_tree", "end", "lines", "name", "start")

    def __init__(self, lines: list[str], start: int, end: int) -> None:
        self.lines, self.start, self.end = lines, start, end
        self._tree: ast.stmt | None = None
        head = lines[start]
        found = _DEFINES.match(head)
        if found is None and not head.startswith(("import ", "from ")):
            raise _Unexpected(f"line {start + 1}: {head[:60]!r}")
        self.name = found.group(1) or found.group(2) if found else None

    def tree(self) -> ast.stmt:
        """The statement; parsing it alone also proves the cut took all of it."""
        if self._tree is None:
            body = ast.parse("".join(self.lines[self.start : self.end])).body
            if len(body) != 1 or isinstance(body[0], ast.ClassDef | ast.Assign) != (self.name is not None):
                raise _Unexpected(f"line {self.start + 1}: not one statement")
            self._tree = body[0]
        return self._tree


# A class, or a plain `Name = ...` (a type alias); `import`/`from` lines are the other kind.
_DEFINES = re.compile(r"class (\w+)\b|(\w+) = ")


def _statements(lines: list[str]) -> list[_Chunk]:
    """The top-level statements, by their first lines: a line at column 0 that is not a
    comment nor a closing bracket starts one (the generator's layout; each chunk is checked
    by parsing it alone when it is used). Parsing only what is kept: ~27 ms of ~30 saved."""
    starts = [i for i, line in enumerate(lines) if line[:1] not in _CONTINUES]
    return [_Chunk(lines, a, b) for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]


_CONTINUES = frozenset(" \t\r\n#)]}") | {""}


def _needed(roots: tuple[str, ...], defined: dict[str, _Chunk]) -> list[_Chunk]:
    """`roots` and every top-level name their statements refer to, transitively (names in
    code and annotations, and quoted forward references), in the source's order."""
    missing = [name for name in roots if name not in defined]
    if missing:
        raise _Unexpected(f"not defined: {', '.join(missing)}")
    kept: dict[str, _Chunk] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        kept[name] = chunk = defined[name]
        for node in ast.walk(chunk.tree()):
            ref = node.id if isinstance(node, ast.Name) else getattr(node, "value", None)
            if isinstance(ref, str) and ref in defined and ref not in kept:
                todo.append(ref)
    return sorted(kept.values(), key=lambda c: c.start)


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
