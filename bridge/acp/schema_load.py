"""What the first request after `initialize` needs, imported once, on a worker thread:
jsonrpcserver, the params models (`bridge.acp.params`, pydantic) and the official ACP models
(`bridge.acp.acp_params`, part of `acp.schema`): 0.2-1 s on this kind of machine.

One loader, one lock, and the event loop never imports these itself: the warm-up after the
first `initialize` answer starts `load_session_path` on a thread, and a request arriving
meanwhile waits for it (`await ensure_session_path()`, on another thread, so the loop goes
on serving). Two threads importing pydantic's circularly-importing modules at once can fail
with Python's import `_DeadlockError` (seen: a first `session/new` answered with it), and
Python 3.11's LazyLoader (bridge/lazy.py, behind `bridge.acp.params`) lets a second thread
see a half-run module; neither can happen when only the loader's thread imports them.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import anyio

log = logging.getLogger(__name__)
LOADED = "the session path is loaded"
_loading = threading.RLock()
started = False  # the loader's thread may be importing: nobody else may now
loaded = False


def load_session_path() -> None:
    """Import everything the session requests use (see the module's docstring)."""
    global loaded, started
    started = True
    with _loading:
        if loaded:
            return
        from bridge.rpc.dispatch import load_jsonrpcserver

        params = importlib.import_module("bridge.acp.params")
        params.parse  # noqa: B018 - runs the lazy module's code (if not yet run) on this thread
        load_jsonrpcserver()
        load_acp_params()
        loaded = True
        log.debug(LOADED)  # tests/e2e/test_startup_imports.py waits for it


async def ensure_session_path() -> None:
    """`load_session_path` done: at once when it is, else waited for on a worker thread
    (never on the event loop, never a second import beside the warm-up's)."""
    global started
    if not loaded:
        started = True  # from now on, even an `initialize` waits (its params model is here too)
        await anyio.to_thread.run_sync(load_session_path)


def load_acp_params() -> ModuleType:
    """`bridge.acp.acp_params`, imported without extracting the models' attribute docstrings.

    `acp.schema`'s models set `use_attribute_docstrings`; before Python 3.13 pydantic finds
    each class's source by walking the stack with `inspect.getmodule` (a scan of
    `sys.modules` per frame) and parses it again, for each of its ~270 models: most of the
    import's cost, paid by the first session/new. Those docstrings only become descriptions
    in a JSON schema, which the daemon never produces; validation is the same without them
    (the params tests run on the models loaded here). The switch is pydantic's private
    function: where it is not found, the import runs as it is, only slower.

    Only the ~30 models of `acp.schema` that the params models are made of are created
    (bridge/acp/schema_subset.py), with `defer_build`: the daemon validates with the strict
    params models only, so a validator of each model they contain would be built for nothing.
    The params models are then built here, on the loader's thread, so a first request pays no
    build of its own."""
    with _loading:  # one patcher at a time: the warm-up thread and a first request may race
        found = sys.modules.get("bridge.acp.acp_params")
        if found is not None:
            return found
        fields: ModuleType | None
        try:
            fields = importlib.import_module("pydantic._internal._fields")
        except ImportError:  # pragma: no cover - another pydantic layout
            fields = None
        saved = getattr(fields, "extract_docstrings_from_cls", None)
        if saved is not None:
            fields.extract_docstrings_from_cls = _no_docstrings  # type: ignore[union-attr]
        try:
            with _deferred_builds():
                module = importlib.import_module("bridge.acp.acp_params")
        finally:
            if saved is not None:
                fields.extract_docstrings_from_cls = saved  # type: ignore[union-attr]
        for model in module.PARAMS_MODELS:
            # Created deferred too: build them now, off the loop (a no-op for one already built:
            # acp_params imported before, without the loader).
            model.model_rebuild()
        return module


@contextmanager
def _deferred_builds() -> Iterator[None]:
    """Models created inside are built at their first use (`defer_build`), through the config
    every pydantic model inherits. Only the loader's thread creates models meanwhile (see the
    module's docstring); one created elsewhere would only be built later, not differently."""
    from pydantic import BaseModel

    saved = BaseModel.model_config
    BaseModel.model_config = {**saved, "defer_build": True}
    try:
        yield
    finally:
        BaseModel.model_config = saved


def _no_docstrings(cls: type[Any], use_inspect: bool = False) -> dict[str, str]:
    return {}
