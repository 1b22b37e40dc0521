"""The bridge starts the native `codex` binary, not the npm Node launcher (adapters/codex/native.py)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil
import pytest

from adapters.codex import create
from adapters.codex.native import native_binary, target
from tests.adapters.codex.support import Codex, Host, prompt, text_of
from tests.fakes.model_server import FakeModelServer, Reply
from tests.real_agents import package_path, require_cli

pytestmark = pytest.mark.anyio


def test_installed_launcher_maps_to_its_platform_binary() -> None:
    launcher = require_cli("codex")
    found = native_binary(str(launcher))
    found_target = target()
    assert found_target is not None, "this machine's platform has a Codex binary"
    triple, platform_package = found_target
    expected = package_path("@openai", platform_package, "vendor", triple, "bin", "codex")
    assert found == (
        str(expected),
        {"CODEX_MANAGED_PACKAGE_ROOT": str(package_path("@openai", "codex")), "CODEX_MANAGED_BY_NPM": "1"},
    )


def test_other_commands_are_left_as_configured(tmp_path: Path) -> None:
    script = tmp_path / "codex"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    assert native_binary(str(script)) is None
    assert native_binary(str(tmp_path / "absent")) is None
    # A launcher whose platform package is missing: fall back to the launcher.
    launcher = tmp_path / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"
    launcher.parent.mkdir(parents=True)
    launcher.write_text("#!/usr/bin/env node\n")
    assert native_binary(str(launcher)) is None


async def test_real_session_runs_without_node(codex: Codex, fake: FakeModelServer) -> None:
    fake.script(Reply(text="native", chunks=2))
    spec = codex.spec()
    adapter = create(spec, codex.adapter_env())
    argv = adapter._argv()
    assert Path(argv[0]).name == "codex" and "vendor" in Path(argv[0]).parts
    host = Host()
    async with codex.session(host) as session:
        pid = session.proc.pid
        assert pid is not None
        proc = psutil.Process(pid)
        assert os.path.realpath(proc.exe()) == os.path.realpath(argv[0])
        assert not [p for p in proc.children(recursive=True) if "node" in p.name()]
        assert proc.environ().get("CODEX_MANAGED_BY_NPM") == "1"
        result = await session.prompt(prompt("hi"))
    assert result["stopReason"] == "end_turn"
    assert text_of(host.updates) == "native"
