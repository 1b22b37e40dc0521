"""The native `codex` binary behind the npm launcher.

`@openai/codex` installs `bin/codex.js`, a Node program that finds the platform package's
binary and runs it as a child (Node 20 has no `execve`): a 40+ MiB Node process and its
start-up in front of every `codex app-server`. The bridge starts that binary itself, with the
environment the launcher would give it; anything else (a wrapper script, a binary on PATH, a
layout this does not know) is started as configured.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# (sys.platform prefix, machine) → (target triple, platform package), as the launcher maps them.
TARGETS = {
    ("linux", "x86_64"): ("x86_64-unknown-linux-musl", "codex-linux-x64"),
    ("linux", "aarch64"): ("aarch64-unknown-linux-musl", "codex-linux-arm64"),
    ("darwin", "x86_64"): ("x86_64-apple-darwin", "codex-darwin-x64"),
    ("darwin", "arm64"): ("aarch64-apple-darwin", "codex-darwin-arm64"),
}


def target() -> tuple[str, str] | None:
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if sys.platform.startswith("linux") else "arm64"}.get(
        machine, machine
    )
    for (prefix, arch), value in TARGETS.items():
        if sys.platform.startswith(prefix) and arch == machine:
            return value
    return None


def native_binary(launcher: str) -> tuple[str, dict[str, str]] | None:
    """(binary, env the launcher adds) when `launcher` (a resolved path) is the npm
    `@openai/codex` launcher and its platform binary is installed; None otherwise."""
    try:
        real = Path(launcher).resolve(strict=True)
    except OSError:
        return None
    if real.name != "codex.js" or real.parent.name != "bin":
        return None
    package = real.parent.parent
    if package.name != "codex" or package.parent.name != "@openai":
        return None
    found = target()
    if found is None:
        return None
    triple, platform_package = found
    candidates = (
        package.parent / platform_package / "vendor" / triple / "bin" / "codex",  # 0.1xx: optional dependency
        package / "node_modules" / "@openai" / platform_package / "vendor" / triple / "bin" / "codex",
        package / "vendor" / triple / "bin" / "codex",  # bundled in the main package
        package / "vendor" / triple / "codex" / "codex",  # older layout
    )
    for binary in candidates:
        if binary.is_file() and os.access(binary, os.X_OK):
            # What the launcher sets: Codex reads these to word its update hints.
            return str(binary), {"CODEX_MANAGED_PACKAGE_ROOT": str(package), "CODEX_MANAGED_BY_NPM": "1"}
    return None
