"""The params models are built on a part of `acp.schema` (bridge/acp/schema_subset.py): the
pinned SDK must take that short way, every model kept must be the SDK's own model, and a
source laid out otherwise must fall back to importing the module whole."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from acp import schema as full
from pydantic import BaseModel

from bridge.acp import schema_subset
from bridge.acp.schema_load import load_acp_params

_SHORT_WAY = """
import sys
from bridge.acp.schema_load import load_acp_params
from bridge.acp.schema_subset import MODULE
module = load_acp_params()
assert module.S.__name__ == MODULE, module.S.__name__
assert not [n for n in sys.modules if n == "acp" or n.startswith("acp.")]
import json
print(json.dumps(sorted(n for n, v in vars(module.S).items() if isinstance(v, type) and v.__module__ == MODULE)))
"""


def test_the_pinned_sdk_is_cut_not_imported() -> None:
    done = subprocess.run([sys.executable, "-c", _SHORT_WAY], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    kept = json.loads(done.stdout)
    assert {"NewSessionRequest", "PromptRequest", "McpServerStdio", "TextContentBlock"} <= set(kept)
    # The cut is the point: a fraction of the module's ~290 models.
    assert len(kept) < 60
    assert "SessionNotification" not in kept and "ToolCallUpdate" not in kept


def _no_descriptions(schema: Any) -> Any:
    # Descriptions come from attribute docstrings, which the loader skips (bridge/acp/schema_load.py).
    if isinstance(schema, dict):
        return {k: _no_descriptions(v) for k, v in schema.items() if k != "description"}
    if isinstance(schema, list):
        return [_no_descriptions(v) for v in schema]
    return schema


def test_every_kept_model_is_the_sdks_model() -> None:
    cut = load_acp_params().S
    models = [
        name
        for name, value in vars(cut).items()
        if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == cut.__name__
    ]
    assert len(models) > 20
    for name in models:
        ours, theirs = getattr(cut, name), getattr(full, name)
        assert _no_descriptions(ours.model_json_schema()) == _no_descriptions(theirs.model_json_schema()), (
            name
        )
        assert set(ours.__pydantic_decorators__.field_validators) == set(
            theirs.__pydantic_decorators__.field_validators
        ), name
    # Line numbers are the file's own (tracebacks point into it).
    ours, theirs = cut.BaseModel.__getattr__.__code__, full.BaseModel.__getattr__.__code__
    assert (ours.co_filename, ours.co_firstlineno) == (theirs.co_filename, theirs.co_firstlineno)
    # The lenient helpers come from the SDK's own file, run as a module of the cut's.
    assert cut.skip_invalid_items.__code__.co_filename.endswith("acp/_deserialize.py")


def _package(root: Path, name: str, schema: str) -> None:
    pkg = root / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "import sys\nsys.modules[__name__].INIT_RAN = True\nfrom . import schema\n"
    )
    (pkg / "_helpers.py").write_text("def tag(v):\n    return v\n")
    (pkg / "schema.py").write_text(textwrap.dedent(schema))


_SCHEMA = """
    from __future__ import annotations
    from pydantic import BaseModel
    from {pkg}._helpers import tag
    Kind = str
    class Leaf(BaseModel):
        kind: Kind
    class Root(BaseModel):
        leaf: "Leaf"
        label: str = tag("x")
    class Unused(BaseModel):
        other: int
"""


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    def make(name: str, extra: str = "") -> None:
        _package(tmp_path, name, _SCHEMA.format(pkg=name) + textwrap.indent(extra, "    "))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setattr(schema_subset, "_PACKAGE", name)
        monkeypatch.setattr(schema_subset, "MODULE", f"tests_cut_{name}")

    yield make
    for n in [n for n in sys.modules if n.startswith(("fakeacp", "tests_cut_"))]:
        del sys.modules[n]


def test_a_source_is_cut_to_what_the_roots_need(fake: Any) -> None:
    fake("fakeacp_ok")
    cut = schema_subset.load("Root")
    assert cut.__name__ == "tests_cut_fakeacp_ok"
    assert cut.Root.model_validate({"leaf": {"kind": "k"}}).leaf.kind == "k"
    assert hasattr(cut, "Leaf") and not hasattr(cut, "Unused")
    assert "fakeacp_ok" not in sys.modules  # the package's __init__ never ran
    assert schema_subset.load("Unused") is cut  # once per process


def test_a_source_laid_out_otherwise_is_imported_whole(fake: Any) -> None:
    fake("fakeacp_call", "Root.model_rebuild()\n")
    module = schema_subset.load("Root")
    assert module.__name__ == "fakeacp_call.schema"
    assert sys.modules["fakeacp_call"].INIT_RAN is True
    assert "tests_cut_fakeacp_call" not in sys.modules


def test_a_statement_that_fails_leaves_no_half_built_module(fake: Any) -> None:
    fake("fakeacp_fails", "class Broken(BaseModel):\n    x: int = 1 // 0\n")
    with pytest.raises(ZeroDivisionError):  # a failure of the SDK's own code is not hidden
        schema_subset.load("Broken")
    assert "tests_cut_fakeacp_fails" not in sys.modules


def test_a_name_the_source_lacks_falls_back_too(fake: Any) -> None:
    fake("fakeacp_missing")
    module = schema_subset.load("Root", "NoSuchModel")
    assert module.__name__ == "fakeacp_missing.schema"


_FALLBACK = """
import sys
from bridge.acp import schema_subset
def refuse(roots):
    raise schema_subset._Unexpected("a layout of another SDK")
schema_subset._build = refuse
from bridge.acp.schema_load import load_acp_params
from bridge.acp import params as P
from bridge.errors import RpcError
module = load_acp_params()
assert module.S.__name__ == "acp.schema", module.S.__name__
try:
    P.parse(P.NewSessionParams, {"cwd": "/w", "mcpServers": [{"name": "m", "args": [], "env": []}]})
except RpcError as exc:
    print(exc.data["field"])
"""


def test_the_whole_module_still_gives_strict_params_models() -> None:
    # The fallback's models are acp.schema's own: the lenient validators are overridden there
    # too (bridge/acp/acp_params.py `_check_strict` ran on them at import).
    done = subprocess.run([sys.executable, "-c", _FALLBACK], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "mcpServers.0.stdio.command"
