"""Loading `bridge.acp.acp_params` (the official ACP models) once, cheaply, from any thread.

Its own module, not `bridge.acp.params`: that one is a lazy module (bridge/lazy.py) whose
first attribute access runs its code, which Python 3.11's LazyLoader does not guard against
a second thread; the warm-up thread (bridge/acp/server.py) imports this module instead,
while the event loop may be using `params`.
"""

from __future__ import annotations

import importlib
import sys
import threading
from types import ModuleType
from typing import Any

_loading = threading.Lock()


def load_acp_params() -> ModuleType:
    """`bridge.acp.acp_params`, imported without extracting the models' attribute docstrings.

    `acp.schema`'s models set `use_attribute_docstrings`; before Python 3.13 pydantic finds
    each class's source by walking the stack with `inspect.getmodule` (a scan of
    `sys.modules` per frame) and parses it again, for each of its ~270 models: most of the
    import's cost, paid by the first session/new. Those docstrings only become descriptions
    in a JSON schema, which the daemon never produces; validation is the same without them
    (the params tests run on the models loaded here). The switch is pydantic's private
    function: where it is not found, the import runs as it is, only slower."""
    with _loading:  # one patcher at a time: the warm-up thread and a first request may race
        loaded = sys.modules.get("bridge.acp.acp_params")
        if loaded is not None:
            return loaded
        fields: ModuleType | None
        try:
            fields = importlib.import_module("pydantic._internal._fields")
        except ImportError:  # pragma: no cover - another pydantic layout
            fields = None
        saved = getattr(fields, "extract_docstrings_from_cls", None)
        if saved is not None:
            fields.extract_docstrings_from_cls = _no_docstrings  # type: ignore[union-attr]
        try:
            return importlib.import_module("bridge.acp.acp_params")
        finally:
            if saved is not None:
                fields.extract_docstrings_from_cls = saved  # type: ignore[union-attr]


def _no_docstrings(cls: type[Any], use_inspect: bool = False) -> dict[str, str]:
    return {}
