"""What the first requests need beyond `initialize` (jsonrpcserver, the params and ACP
models) is imported by one loader on a worker thread (bridge/acp/schema_load.py): a request
arriving while it runs waits for it — on another thread, the event loop going on — instead
of importing the same modules beside it (two threads importing pydantic at once can fail
with Python's import deadlock error)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest

from bridge.acp import schema_load
from tests.conftest import in_process

pytestmark = pytest.mark.anyio


def test_the_models_load_without_attribute_docstrings_and_validate_the_same() -> None:
    from pydantic._internal import _fields

    before = _fields.extract_docstrings_from_cls
    module = schema_load.load_acp_params()
    assert _fields.extract_docstrings_from_cls is before  # put back after the import
    p = module.NewSessionParams.model_validate({"cwd": "/w", "mcpServers": []})
    assert p.cwd == "/w" and p.mcp_servers == []


async def test_requests_wait_for_the_loader_and_the_loop_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered, release = threading.Event(), threading.Event()
    loads: list[str] = []

    def slow_load() -> None:
        loads.append(threading.current_thread().name)
        entered.set()
        release.wait(30)
        schema_load.loaded = True

    async with in_process(tmp_path) as d:
        await d.client.initialize()
        monkeypatch.setattr(schema_load, "loaded", False)
        monkeypatch.setattr(schema_load, "load_session_path", slow_load)
        answered: list[object] = []

        async def ask() -> None:
            answered.append(await d.client.request("session/list", {}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask)
            await anyio.to_thread.run_sync(entered.wait, 30)
            # The loop is free meanwhile (this test runs on it), and the request is held.
            await anyio.wait_all_tasks_blocked()
            assert answered == []
            release.set()
        assert answered and "sessions" in answered[0]  # type: ignore[operator]
    assert loads and loads[0] != threading.main_thread().name  # a worker, never the loop's thread


_CHECK_LOAD = """
from pydantic import BaseModel
from bridge.acp.schema_load import load_acp_params
module = load_acp_params()
assert all(m.__pydantic_complete__ for m in module.PARAMS_MODELS)
assert "defer_build" not in BaseModel.model_config  # the switch was put back
import sys
assert "acp" not in sys.modules  # only a part of acp.schema (bridge/acp/schema_subset.py)
inner = module.S.TextContentBlock  # in PromptParams, never validated with on its own
assert inner.model_config.get("defer_build") is True
assert not inner.__pydantic_complete__
assert inner.model_validate({"type": "text", "text": "t"}).text == "t"
print("ok")
"""


def test_params_models_are_built_when_loaded_and_the_models_inside_them_are_deferred() -> None:
    # The loader defers the validators of acp.schema's models but builds the params models
    # itself: a first request must not pay a schema build on the event loop. A fresh
    # interpreter: in this one another test may have imported acp_params first, without it.
    done = subprocess.run([sys.executable, "-c", _CHECK_LOAD], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
