"""Modules imported at their first use rather than by the module that names them.

Start-up (issue 17): the first `initialize` answer must not wait for packages only later
requests use — pydantic (the request params' models, ~100 ms here with pydantic-core and the
`importlib.metadata` its plugin loader pulls in) and psutil (process checks). `lazy_module`
returns the module object at once and runs its code at the first attribute access, so the
importing module keeps writing `P.NewSessionParams` / `psutil.Process` as before. Type
checkers see an ordinary import (`if TYPE_CHECKING: import x` beside the lazy one).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_module(name: str) -> ModuleType:
    """`name` as a module whose code runs at its first attribute access (already imported:
    the module itself)."""
    if (found := sys.modules.get(name)) is not None:
        return found
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    parent, _, child = name.rpartition(".")
    if parent:
        # What a normal import does, so `from parent import child` finds it.
        setattr(sys.modules[parent], child, module)
    return module
