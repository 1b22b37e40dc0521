"""The agents' environment: merging the login shell's, running a real login shell (bash with
a temporary HOME), caching it, and falling back when the shell misbehaves."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import anyio
import pytest

from bridge.envsetup import CACHE_FILE, IGNORED, Environment, merge
from tests.real_agents import require_program

pytestmark = pytest.mark.anyio

BASH = shutil.which("bash")
# Skips without bash, fails instead under AGENT_BRIDGE_REQUIRE_REAL_AGENTS=1.
needs_bash = pytest.mark.usefixtures("_bash")


@pytest.fixture
def _bash() -> None:
    require_program("bash")


def test_merge_adds_and_never_overrides() -> None:
    base = {"PATH": "/usr/bin:/bin", "HOME": "/h", "CODEX_HOME": "/editor/choice"}
    login = {
        "PATH": "/h/.nvm/versions/node/v22/bin:/usr/bin:/bin:/h/.local/bin",
        "NVM_DIR": "/h/.nvm",
        "CODEX_HOME": "/shell/choice",
        "PWD": "/somewhere",
        "SHLVL": "2",
        "_": "/usr/bin/env",
    }
    env = merge(base, login)
    assert env["PATH"] == "/usr/bin:/bin:/h/.nvm/versions/node/v22/bin:/h/.local/bin"
    assert env["NVM_DIR"] == "/h/.nvm"
    assert env["CODEX_HOME"] == "/editor/choice"  # the daemon's (editor's) value wins
    assert not (IGNORED & (set(env) - set(base)))


def test_merge_config_env_and_path_prepend() -> None:
    env = merge({"PATH": "/usr/bin", "A": "daemon"}, {"PATH": "/x"}, {"A": "config"}, ["~/bin", "/usr/bin"])
    assert env["A"] == "config"
    assert env["PATH"] == os.pathsep.join([os.path.expanduser("~/bin"), "/usr/bin", "/x"])


def test_complete_respects_what_the_adapter_chose() -> None:
    base = {"PATH": "/usr/bin", "KEEP": "1", "DROPPED": "d"}
    e = Environment(None, login_shell=False, extra={"FROM_CONFIG": "c"}, path_prepend=["/opt/bin"], base=base)
    adapter_env = {"PATH": "/usr/bin", "KEEP": "agent-override"}  # DROPPED removed on purpose
    out = e.complete(adapter_env)
    assert out == {"PATH": "/opt/bin:/usr/bin", "KEEP": "agent-override", "FROM_CONFIG": "c"}


def _home(tmp_path: Path, profile: str) -> tuple[Path, dict[str, str]]:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bash_profile").write_text(profile)
    base = {"PATH": "/usr/bin:/bin", "HOME": str(home), "SHELL": str(BASH), "DAEMON_ONLY_SETTING": "x"}
    return home, base


@needs_bash
async def test_real_login_shell_adds_nvm_and_local_bin(tmp_path: Path) -> None:
    home, base = _home(
        tmp_path,
        'echo "Welcome, this banner is on stdout"\n'
        'export PATH="$HOME/.nvm/versions/node/v22/bin:$PATH:$HOME/.local/bin"\n'
        "export FROM_PROFILE=yes\n"
        "export MY_SECRET_TOKEN=profile-secret-value\n",
    )
    state = tmp_path / "state"
    e = Environment(str(state), base=base)
    with anyio.fail_after(30):
        login = await e.resolve()
    assert login.source == "shell", login.error
    path = e.path().split(os.pathsep)
    assert path[:2] == ["/usr/bin", "/bin"]
    assert f"{home}/.nvm/versions/node/v22/bin" in path and f"{home}/.local/bin" in path
    assert e.merged["FROM_PROFILE"] == "yes"
    cache = state / CACHE_FILE
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    # Only what the rc files set is kept: not the daemon's own environment.
    cached = json.loads(cache.read_text())["env"]
    assert cached["FROM_PROFILE"] == "yes" and "DAEMON_ONLY_SETTING" not in cached

    # A second daemon reads the cache instead of starting a shell.
    (home / ".bash_profile").write_text("export FROM_PROFILE=changed\n")
    again = Environment(str(state), base=base)
    with anyio.fail_after(30):
        login = await again.resolve()
    assert login.source == "cache" and again.merged["FROM_PROFILE"] == "yes"
    # ...until it is stale.
    stale = Environment(str(state), base=base, ttl=0)
    with anyio.fail_after(30):
        login = await stale.resolve()
    assert login.source == "shell" and stale.merged["FROM_PROFILE"] == "changed"


@needs_bash
async def test_a_shell_that_hangs_is_abandoned_in_time(tmp_path: Path) -> None:
    _, base = _home(tmp_path, "read answer\nsleep 60\n")
    e = Environment(str(tmp_path / "state"), base=base, timeout=1.0)
    with anyio.fail_after(15):
        login = await e.resolve()
    assert login.source == "none" and login.error and "took more than 1 s" in login.error
    assert e.merged == base


async def test_an_unknown_shell_is_not_run(tmp_path: Path) -> None:
    base = {"PATH": "/bin", "SHELL": "/bin/tcsh"}
    e = Environment(str(tmp_path), base=base)
    login = await e.resolve()
    assert login.error and "tcsh" in login.error and e.merged == base


async def test_disabled(tmp_path: Path) -> None:
    e = Environment(str(tmp_path), login_shell=False, base={"PATH": "/bin", "SHELL": str(BASH)})
    login = await e.resolve()
    assert login.source == "disabled" and not (tmp_path / CACHE_FILE).exists()
