"""The import direction of DESIGN.md: a module imports only from layers below it; adapters
never reach into the ACP server, transports or the app; only the app imports adapters."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Bottom up. A bridge module may import its own layer and the ones before it.
LAYERS = [
    "bridge",  # the package itself: only __version__
    "bridge.errors",
    "bridge.timeouts",  # the default timeouts, named once (constants only)
    "bridge.paths",
    "bridge.lazy",  # imports at first use (start-up): stdlib only
    "bridge.wire",
    "bridge.diagnostics.redact",
    "bridge.envsetup",
    "bridge.trace",
    "bridge.rpc",
    "bridge.process",
    "bridge.store",
    "bridge.mcp",  # config-wired MCP servers: entries and per-session status (pure)
    "bridge.core",
    "bridge.config_schema",  # the config file's pydantic schema, imported by bridge.config when needed
    "bridge.config",
    "bridge.diagnostics.rules",
    "bridge.diagnostics.classify",
    "bridge.acp",
    "bridge.agents",
    "bridge.logsetup",
    "bridge.transports",
    "bridge.inspector",  # the session inspector: a web view over the store, served by the listener
    "bridge.diagnostics.binaries",
    "bridge.app",
    "bridge.diagnostics.report",
    "bridge.diagnostics.credentials",
    "bridge.diagnostics.state_checks",
    "bridge.mcp.check",  # `agent-bridge mcp check` (the `mcp` client): for the CLI and doctor
    "bridge.diagnostics.doctor",
    "bridge.diagnostics",  # the package's __init__
    "bridge.client",
    "bridge.cli",
    "bridge.__main__",
]
# Composition roots: the only modules that may import adapters.
ROOTS = ("bridge.app", "bridge.cli", "bridge.diagnostics.doctor", "bridge.__main__")
ADAPTER_MAY_IMPORT = (
    "bridge.errors",
    "bridge.timeouts",
    "bridge.__init__",
    "bridge.wire",
    "bridge.rpc",
    "bridge.process",
    "bridge.core",
    "bridge.diagnostics",
    "adapters",
    "bridge.envsetup",
    "bridge.mcp.status",
)


def layer_of(module: str) -> int | None:
    if module == "bridge":
        return 0
    # The longest matching prefix decides (bridge.diagnostics.redact before bridge.diagnostics).
    matches = [i for i, p in enumerate(LAYERS[1:], start=1) if module == p or module.startswith(p + ".")]
    return max(matches, key=lambda i: len(LAYERS[i])) if matches else None


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from bridge.diagnostics import redact` imports the module bridge.diagnostics.redact.
            base = ROOT.joinpath(*node.module.split("."))
            subs = [
                a.name for a in node.names if (base / f"{a.name}.py").exists() or (base / a.name).is_dir()
            ]
            found += [f"{node.module}.{name}" for name in subs] or [node.module]
    return found


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_bridge_layers_point_down() -> None:
    problems = []
    for path in sorted((ROOT / "bridge").rglob("*.py")):
        me = module_name(path)
        mine = layer_of(me)
        assert mine is not None, f"{me} is in no layer: add it to LAYERS"
        for imp in imports(path):
            if imp.startswith("adapters") and not me.startswith(ROOTS):
                problems.append(f"{me} imports {imp}: only the app may import adapters")
            theirs = layer_of(imp)
            if theirs is not None and theirs > mine:
                problems.append(
                    f"{me} (layer {LAYERS[mine]}) imports {imp} (layer {LAYERS[theirs]}, above it)"
                )
    assert not problems, "\n".join(problems)


def test_adapters_use_only_the_lower_layers() -> None:
    problems = []
    for path in sorted((ROOT / "adapters").rglob("*.py")):
        me = module_name(path)
        for imp in imports(path):
            if imp.startswith("bridge") and imp != "bridge" and not imp.startswith(ADAPTER_MAY_IMPORT):
                problems.append(f"{me} imports {imp}")
            top = me.split(".")[1] if me.count(".") >= 1 else ""
            if (
                imp.startswith("adapters.")
                and top not in ("registry", "common", "static")
                # adapters.static: the native agents' capabilities, read without their adapters
                and not imp.startswith((f"adapters.{top}", "adapters.common", "adapters.static"))
            ):
                problems.append(f"{me} imports another adapter: {imp}")
    assert not problems, "\n".join(problems)


# The client library (bridge/client) is a program of its own that speaks to a daemon: it may
# use the wire format, the JSON-RPC endpoint and the process layer (to spawn and stop one),
# and the names every layer shares; nothing of the daemon's inside (core, store, acp, config).
CLIENT_MAY_IMPORT = (
    "bridge",  # __version__
    "bridge.errors",
    "bridge.timeouts",
    "bridge.paths",
    "bridge.wire",
    "bridge.rpc",
    "bridge.process",
    "bridge.client",
)


def test_the_client_library_stays_behind_its_boundary() -> None:
    problems = []
    for path in sorted((ROOT / "bridge" / "client").rglob("*.py")):
        me = module_name(path)
        for imp in imports(path):
            allowed = imp == "bridge" or any(
                imp == p or imp.startswith(p + ".") for p in CLIENT_MAY_IMPORT[1:]
            )
            if imp.startswith("bridge") and not allowed:
                problems.append(f"{me} imports {imp}")
    assert not problems, "\n".join(problems)


def _known(module: str) -> str | None:
    """The module of ours `module` names (a package's `__init__` for a package), if any."""
    base = ROOT.joinpath(*module.split("."))
    if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
        return module
    return None


def test_no_import_cycles_not_even_for_type_checking() -> None:
    """Every import counts: at module level, in functions, under `if TYPE_CHECKING:`. A cycle
    hidden behind TYPE_CHECKING is a cycle of the design all the same."""
    graph: dict[str, set[str]] = {}
    for top in ("bridge", "adapters"):
        for path in sorted((ROOT / top).rglob("*.py")):
            me = module_name(path)
            graph[me] = {m for imp in imports(path) if (m := _known(imp)) is not None and m != me}
    # Tarjan's strongly connected components: any with more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)
